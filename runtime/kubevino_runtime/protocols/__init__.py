"""Protocol front ends over the data plane: KServe v2 REST and gRPC, TF-Serving REST."""
