"""The measuring half of scripts/perf-app.sh (runs inside Xvfb and a private keyring session)."""

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 20


def tree(root):
    """The pid and every descendant (WebKit's web and network processes are children of the app)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def marks(report):
    out = {}
    try:
        with open(report) as f:
            for line in f:
                name, *pairs = line.split()
                out[name] = {k: float(v) for k, v in (p.split("=") for p in pairs)}
    except OSError:
        pass
    return out


def run_once(app, data, report, measure_idle):
    if os.path.exists(report):
        os.remove(report)
    env = dict(os.environ, MAGPIE_DATA_DIR=data, MAGPIE_PERF_REPORT=report, MAGPIE_PERF_OPEN_CHAT="bob",
               MAGPIE_LOG="warn")
    started_ms = time.time() * 1000
    proc = subprocess.Popen([app], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not {"chat_list", "open_chat"} <= marks(report).keys():
            if proc.poll() is not None:
                raise SystemExit(f"the app exited early: {proc.stderr.read()[-2000:]}")
            if time.time() > deadline:
                raise SystemExit(f"no marks after 120 s: {marks(report)}")
            time.sleep(0.02)
        got = marks(report)
        # Where startup went: each moment after exec (Rust's wall_ms, the UI's value_ms), in order.
        moments = sorted(
            (v.get("value_ms", v["wall_ms"]) - started_ms, k[3:]) for k, v in got.items() if k.startswith("at_")
        )
        print("  startup: " + ", ".join(f"{name} {ms:.0f}" for ms, name in moments))
        result = {
            "start_ms": got["chat_list"]["wall_ms"] - started_ms,
            "open_chat_ms": got["open_chat"]["value_ms"],
        }
        if measure_idle:
            time.sleep(5)  # let the first paints, the relay connection and the GC settle
            pids = tree(proc.pid)
            before = sum(cpu_ticks(p) for p in pids)
            time.sleep(IDLE_SECONDS)
            pids = tree(proc.pid)
            after = sum(cpu_ticks(p) for p in pids)
            result["idle_cpu_pct"] = (after - before) / CLK_TCK / IDLE_SECONDS * 100
            result["pss_mb"] = sum(pss_kb(p) for p in pids) / 1024
            result["processes"] = len(pids)
            for pid in pids:
                print(f"  pss {comm(pid)} ({pid}): {pss_kb(pid) / 1024:.1f} MB")
        return result
    finally:
        for pid in reversed(tree(proc.pid)):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# What Magpie sets on a machine without a GPU render node (src-tauri/src/rendering.rs): WebKitGTK's software path.
SOFTWARE_PATH = {"WEBKIT_DISABLE_COMPOSITING_MODE": "1", "WEBKIT_DISABLE_DMABUF_RENDERER": "1"}


def hello_start_ms(hello, scratch, extra_env=None):
    """Exec -> first paint of the Tauri hello world (scripts/baseline-hello-tauri.sh), measured like Magpie's."""
    report = os.path.join(scratch, "hello.txt")
    if os.path.exists(report):
        os.remove(report)
    started_ms = time.time() * 1000
    env = dict(os.environ, HELLO_REPORT=report, **(extra_env or {}))
    proc = subprocess.Popen([hello], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while "painted" not in marks(report):
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("the hello world did not report its first paint")
            time.sleep(0.02)
        return marks(report)["painted"]["wall_ms"] - started_ms
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--hello", help="the hello world's binary, timed the same way as the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="magpie-perf.") as scratch:
        data = os.path.join(scratch, "data")
        report = os.path.join(scratch, "marks.txt")
        began = time.time()
        subprocess.run([args.seed, data, str(args.messages)], check=True)
        print(f"seeded {args.messages} messages in {time.time() - began:.1f} s")
        results = []
        for i in range(args.runs):
            result = run_once(args.app, data, report, measure_idle=(i == args.runs - 1))
            label = "cold" if i == 0 else "warm"
            print(f"run {i + 1} ({label}): " + " ".join(f"{k}={v:.1f}" for k, v in result.items()))
            results.append(result)
        warm = results[1:] or results
        start_ms = statistics.median(r["start_ms"] for r in warm)
        open_ms = statistics.median(r["open_chat_ms"] for r in warm)
        last = results[-1]
        print("magpie: " + " ".join(f"{r['start_ms']:.0f}" for r in warm) + " ms")
        if args.hello:
            hello = [hello_start_ms(args.hello, scratch) for _ in range(args.runs)][1:]
            hello_ms = statistics.median(hello)
            print("hello world: " + " ".join(f"{ms:.0f}" for ms in hello) + " ms")
            print(f"hello_start_ms={hello_ms:.0f} start_ratio={start_ms / hello_ms:.2f}")
            # The same hello world on the rendering path Magpie chooses without a GPU, for a like-for-like figure.
            if not os.path.isdir("/dev/dri") or not any(n.startswith("renderD") for n in os.listdir("/dev/dri")):
                same = [hello_start_ms(args.hello, scratch, SOFTWARE_PATH) for _ in range(args.runs)][1:]
                same_ms = statistics.median(same)
                print("hello world, software path: " + " ".join(f"{ms:.0f}" for ms in same) + " ms")
                print(f"hello_software_start_ms={same_ms:.0f} start_ratio_same_path={start_ms / same_ms:.2f}")
        print(f"start_ms={start_ms:.0f} pss_mb={last['pss_mb']:.0f} idle_cpu_pct={last['idle_cpu_pct']:.2f} "
              f"open_chat_ms={open_ms:.0f}")


if __name__ == "__main__":
    main()
