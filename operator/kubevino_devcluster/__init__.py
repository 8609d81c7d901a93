"""A throwaway local Kubernetes cluster made of pinned upstream binaries: etcd, kube-apiserver,
controller-manager, scheduler, and real nodes (kubelet, containerd, runc, CNI, kube-proxy), each
in a network namespace of its own. One module for the test tiers, ``scripts/demo.sh`` and
``kubevino dev-cluster``; it runs from a kubevino checkout, as root, and removes everything it
made when it stops."""
