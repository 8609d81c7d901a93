import sys, time, statistics
from pathlib import Path
import openvino as ov
sys.path.insert(0, "runtime")
from kubevino_runtime.demo_model import INPUT_NAME, sample_input, write_model
d = Path("/tmp/latm"); 
if not d.exists(): write_model(d, size="small")
xml = next(d.rglob("*.xml"))
c = ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
r = c.create_infer_request(); img = sample_input()
for gap in (0, 0.001, 0.002, 0.005):
    ts=[]
    for i in range(300):
        if gap: time.sleep(gap)
        t=time.perf_counter(); r.infer({INPUT_NAME: img}); ts.append(time.perf_counter()-t)
    print(gap, "p50 %.3f ms" % (statistics.median(ts)*1e3))
