import sys, time
from pathlib import Path
import numpy as np, openvino as ov
sys.path.insert(0, "runtime")
from kubevino_runtime.demo_model import INPUT_NAME, sample_input, build_model
size = sys.argv[1]
core = ov.Core()
def rate(model, batch, secs=4):
    c = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    q = ov.AsyncInferQueue(c, c.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    img = np.repeat(sample_input(), batch, axis=0)
    n = 0
    def cb(*a):
        nonlocal n; n += batch
    q.set_callback(cb)
    for _ in range(len(q)): q.start_async({INPUT_NAME: img})
    q.wait_all(); n = 0; t = time.perf_counter()
    while time.perf_counter() - t < secs: q.start_async({INPUT_NAME: img})
    q.wait_all(); return n / (time.perf_counter() - t), len(q), c.get_property("NUM_STREAMS")
static = build_model(size=size)
dyn = build_model(size=size); dyn.reshape({INPUT_NAME: ov.PartialShape("[?,3,224,224]")})
for label, m, b in [("static b1", static, 1), ("dyn b1", dyn, 1), ("dyn b2", dyn, 2), ("dyn b4", dyn, 4), ("dyn b8", dyn, 8), ("static b1 again", static, 1)]:
    r, nq, st = rate(m, b)
    print(f"{size} {label}: {r:.1f} img/s (nireq {nq}, streams {st})", flush=True)
