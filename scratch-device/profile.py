"""Profile the engine process and one front end under saturation (device machine)."""
import os, sys, subprocess, tempfile, threading, time
from pathlib import Path
sys.path.insert(0, os.getcwd())
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import runtime_throughput as rt
from tests.runtime.serving import running_server
from kubevino_runtime.demo_model import write_model

def thread_cpu(pid):
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[f"{task.name}:{name}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main():
    OUT = Path(os.environ.get("OUT", "/tmp/out"))
    workers = int(sys.argv[1]); max_batch = int(sys.argv[2]); size = sys.argv[3]
    cpus = sorted(os.sched_getaffinity(0)); server_cpus, client_cpus = cpus[:12], cpus[12:]
    os.sched_setaffinity(0, server_cpus)
    clients = [[c] for c in client_cpus]

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        write_model(workdir / "bench", size=size)
        with running_server(rt.serving_args(workdir, "CPU", "THROUGHPUT", workers, max_batch), workdir) as server:
            server.wait_ready()
            engine = server.process.pid
            children = [int(c) for c in Path(f"/proc/{engine}/task/{engine}/children").read_text().split()]
            nireq = rt.server_nireq(server.rest)
            conc = max(2, nireq * (max_batch + 1) if max_batch > 1 else 2 * nireq)
            result = {}
            t = threading.Thread(target=lambda: result.setdefault("rate", rt.served_throughput("grpc", server.grpc, 14, conc, clients, 2 * workers)))
            t.start()
            time.sleep(10)  # clients start 6 s later
            before = {pid: thread_cpu(pid) for pid in [engine, *children]}
            procs = [subprocess.Popen([".venv-bench-carry/py-spy", "record", "-p", str(pid), "-d", "6", "-r", "200", "-f", "raw", "--nonblocking", "-o", str(OUT / f"{name}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid, name in [(engine, f"engine-w{workers}-b{max_batch}")] + [(c, f"frontend-w{workers}-b{max_batch}") for c in children[:1]]]
            time.sleep(6)
            after = {pid: thread_cpu(pid) for pid in [engine, *children]}
            for p in procs: p.wait()
            t.join()
            print(f"workers {workers} batch {max_batch} size {size}: {result['rate']:.0f}/s over gRPC, {conc} in flight")
            for pid in [engine, *children]:
                label = "engine" if pid == engine else f"front end {pid}"
                busy = sorted(((after[pid].get(k, 0) - v) / 6, k) for k, v in before[pid].items())
                total = sum(b for b, _ in busy)
                print(f"  {label}: {total:.2f} CPUs; busiest threads: " + ", ".join(f"{k} {b:.2f}" for b, k in busy[::-1][:4]))

if __name__ == '__main__':
    main()
