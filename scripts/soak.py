#!/usr/bin/env python3
"""The soak run behind scripts/soak.sh (which builds, raises the open files limit and
calls this): one origin and one edge of rtmp-edge on loopback, 1,000 players through the
edge for MINUTES, faults every few seconds, samples every 10 s, then a table and a verdict.

Load: `rtmp-bench publish --sequence` to the origin (a 314 kbit/s H.264/AAC fixture, looped,
every message stamped); 900 probe players (`rtmp-bench play`) and 100 churning ones
(`rtmp-bench churn`: play to the first keyframe, leave, come back; 20 new connections/s)
on the edge.

Faults, one every 3 to 8 s at random: a player that stalls (rtmpdump, SIGSTOPped: the edge
must drop it as too slow once the kernel's buffers are full, about 2 minutes at this
bitrate), a garbage connection (bad RTMP version byte, then random bytes), a half handshake
that stalls (the edge's handshake timeout ends it), and the publisher killed and started
again; every 5 minutes the origin is killed (SIGKILL) and started again, and with it the
publisher.

Verdict: the edge's RSS and open files are flat (the mean of the last quarter of samples
within 10 % of the second quarter's); the probes lost and reordered nothing (rtmp-bench's
sequence checks), none of them failed, and each saw every publisher change; the edge's
counters match the faults injected (too slow = stalls, handshake failed = garbage,
handshake timeouts = half handshakes), and its pull reconnected after each origin restart.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

PROBES = 900
CHURNERS = 100
SAMPLE_EVERY = 10
# Seconds between origin restarts (RTMP_EDGE_SOAK_ORIGIN_EVERY: for trying the script out).
ORIGIN_EVERY = float(os.environ.get("RTMP_EDGE_SOAK_ORIGIN_EVERY", "300"))
STALL_LIFETIME = 170  # seconds a stalled player is left before the script kills it


def log(message):
    print(f"[soak] {time.strftime('%H:%M:%S')} {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.load(answer)


def get_text(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read().decode()


def wait_for(what, condition, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"[soak] gave up waiting for {what}")


class Process:
    """A child process with its output in WORK/NAME.log (appended across restarts)."""

    started = []  # every one, to kill what is left if the run fails

    def __init__(self, work, name, args):
        Process.started.append(self)
        self.name = name
        self.log = open(os.path.join(work, f"{name}.log"), "ab")
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self):
        self.signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self, seconds=10):
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(seconds)
        except subprocess.TimeoutExpired:
            self.kill()


def proc_figures(pid):
    """(RSS KiB, open files, CPU seconds) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, fds, cpu
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def closes(metrics_text):
    counts = {}
    prefix = 'rtmp_edge_connections_closed_total{reason="'
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            reason, count = line[len(prefix):].split('"} ')
            counts[reason] = int(float(count))
    return counts


class Soak:
    def __init__(self, minutes, bin_dir, fixture, work):
        self.minutes = minutes
        self.bin_dir = bin_dir
        self.fixture = fixture
        self.work = work
        self.origin_port, self.origin_api = free_port(), free_port()
        self.edge_port, self.edge_api = free_port(), free_port()
        self.stream = "live/soak"
        self.faults = {"stall": 0, "garbage": 0, "half_handshake": 0, "publisher_restart": 0, "origin_restart": 0}
        self.publisher_starts = 0
        self.stalls = []  # (Process, injected at)
        self.samples = []
        self.lock = threading.Lock()
        self.stop_sampling = threading.Event()
        self.origin = self.edge = self.publisher = None
        self.threads = []

    # ------------------------------------------------------------ processes
    def start_origin(self):
        self.origin = Process(self.work, "origin", [
            f"{self.bin_dir}/soak-relay", "--listen", f"127.0.0.1:{self.origin_port}",
            "--http-listen", f"127.0.0.1:{self.origin_api}"])
        wait_for("the origin's API", lambda: get_json(self.api(self.origin_api, "/api/v1/summary")) is not None)

    def start_publisher(self):
        self.publisher = Process(self.work, "publisher", [
            f"{self.bin_dir}/soak-bench", "publish", f"rtmp://127.0.0.1:{self.origin_port}/{self.stream}",
            "--file", self.fixture, "--sequence", "--duration", "0"])
        self.publisher_starts += 1
        # Live at the origin, and the edge's pull delivering it: every probe will see this
        # publisher's messages before anything else happens to it.
        wait_for("the publisher at the origin", lambda: any(
            s["name"] == "soak" and s["live"] and s["publisher"] for s in get_json(self.api(self.origin_api, "/api/v1/streams"))))
        if self.edge:
            wait_for("the edge's pull", self.pull_playing)
            time.sleep(2)

    def pull_playing(self):
        streams = get_json(self.api(self.edge_api, "/api/v1/streams"))
        return any(u["kind"] == "pull" and u["state"] == "playing" for s in streams if s["name"] == "soak" for u in s["upstreams"])

    def start_edge(self):
        self.edge = Process(self.work, "edge", [
            f"{self.bin_dir}/soak-relay", "--listen", f"127.0.0.1:{self.edge_port}",
            "--http-listen", f"127.0.0.1:{self.edge_api}", "--origin", f"127.0.0.1:{self.origin_port}",
            "--max-connections", "100000", "--max-connections-per-ip", "100000"])
        wait_for("the edge's API", lambda: get_json(self.api(self.edge_api, "/api/v1/summary")) is not None)

    def api(self, port, path):
        return f"http://127.0.0.1:{port}{path}"

    # ------------------------------------------------------------ faults
    def stall(self):
        player = Process(self.work, "stalled-players", [
            "rtmpdump", "-q", "-r", f"rtmp://127.0.0.1:{self.edge_port}/{self.stream}", "--live", "-o", "/dev/null"])
        time.sleep(2)
        if not player.alive():
            log("a player to stall ended by itself (see stalled-players.log); not counted")
            return
        player.signal(signal.SIGSTOP)
        self.stalls.append((player, time.monotonic()))
        self.faults["stall"] += 1

    def garbage(self):
        # Version 1 is not RTMP's 3 (or 6): the handshake fails at the first byte.
        self.send_until_closed(b"\x01" + os.urandom(random.randint(1, 4000)), 10)
        self.faults["garbage"] += 1

    def half_handshake(self):
        # C0 and half of C1, then nothing: the handshake timeout ends it.
        self.send_until_closed(b"\x03" + os.urandom(700), 30)
        self.faults["half_handshake"] += 1

    def send_until_closed(self, payload, timeout):
        """Connects to the edge, sends `payload` and reads until the edge closes, in a thread."""
        def run():
            with socket.create_connection(("127.0.0.1", self.edge_port), timeout=timeout) as s:
                s.sendall(payload)
                try:
                    while s.recv(4096):
                        pass
                except OSError:
                    pass
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def restart_publisher(self):
        self.publisher.kill()
        self.start_publisher()
        self.faults["publisher_restart"] += 1

    def restart_origin(self):
        self.origin.kill()
        self.publisher.kill()  # its connection is gone with the origin
        self.start_origin()
        self.start_publisher()
        self.faults["origin_restart"] += 1

    def reap_stalls(self, everything=False):
        now = time.monotonic()
        for player, injected in list(self.stalls):
            if everything or now - injected > STALL_LIFETIME:
                player.signal(signal.SIGCONT)
                player.kill()
                self.stalls.remove((player, injected))

    # ------------------------------------------------------------ samples
    def sample_forever(self, started):
        last = {}
        while not self.stop_sampling.wait(SAMPLE_EVERY):
            row = {"t": round(time.monotonic() - started)}
            for role, process in (("edge", self.edge), ("origin", self.origin)):
                figures = proc_figures(process.pid) if process else None
                if figures:
                    rss, fds, cpu = figures
                    previous = last.get((role, process.pid))
                    row[f"{role}_rss_mib"] = round(rss / 1024, 1)
                    row[f"{role}_fds"] = fds
                    row[f"{role}_cpu_pct"] = round(100 * (cpu - previous[0]) / (time.monotonic() - previous[1]), 1) if previous else None
                    last[(role, process.pid)] = (cpu, time.monotonic())
            try:
                summary = get_json(self.api(self.edge_api, "/api/v1/summary"))
                row["players"], row["connections"] = summary["players"], summary["connections"]
                counts = closes(get_text(self.api(self.edge_api, "/metrics")))
                for reason in ("too_slow", "handshake_failed", "handshake_timeout"):
                    row[reason] = counts.get(reason, 0)
                streams = get_json(self.api(self.edge_api, "/api/v1/streams"))
                row["pull_reconnects"] = sum(u["reconnects"] for s in streams if s["name"] == "soak" for u in s["upstreams"])
            except (OSError, ValueError, KeyError) as error:
                row["api_error"] = str(error)
            with open("/proc/loadavg") as load:
                row["load1"] = float(load.read().split()[0])
            row["faults"] = sum(self.faults.values())
            with self.lock:
                self.samples.append(row)
            with open(os.path.join(self.work, "samples.jsonl"), "a") as out:
                out.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------ the run
    def run(self):
        self.start_origin()
        self.start_publisher()
        self.start_edge()
        duration = self.minutes * 60
        edge_url = f"rtmp://127.0.0.1:{self.edge_port}/{self.stream}"
        probes = Process(self.work, "probes", [
            f"{self.bin_dir}/soak-bench", "play", edge_url, "-n", str(PROBES), "--rate", "100",
            "--duration", str(duration + 20), "--json", os.path.join(self.work, "probes.json")])
        wait_for(f"{PROBES} probes playing", lambda: get_json(self.api(self.edge_api, "/api/v1/summary"))["players"] >= PROBES, 60)
        churn = Process(self.work, "churn", [
            f"{self.bin_dir}/soak-bench", "churn", edge_url, "-n", str(CHURNERS), "--rate", "20",
            "--duration", str(duration), "--json", os.path.join(self.work, "churn.json")])
        started = time.monotonic()
        log(f"{PROBES} probes playing, {CHURNERS} churning; faults for {self.minutes} min "
            f"(origin :{self.origin_port}, edge :{self.edge_port}, APIs :{self.origin_api} :{self.edge_api}, logs in {self.work})")
        sampler = threading.Thread(target=self.sample_forever, args=(started,), daemon=True)
        sampler.start()
        next_origin = started + ORIGIN_EVERY
        end = started + duration
        while time.monotonic() < end - 15:
            time.sleep(random.uniform(3, 8))
            ended = [p for p in (probes, churn) if not p.alive()]
            if ended:
                codes = ", ".join(f"{p.name}: exit {p.popen.returncode}" for p in ended)
                log(f"players' runs ended early ({codes}; a negative code is the signal that ended them): stopping")
                break
            now = time.monotonic()
            self.reap_stalls()
            if now >= next_origin and end - now > 60:
                next_origin += ORIGIN_EVERY
                log("fault: origin killed and started again")
                self.restart_origin()
                continue
            remaining = end - now
            choice = random.choices(["stall", "garbage", "half_handshake", "publisher_restart"], [3, 3, 2, 1])[0]
            if choice == "stall" and remaining > STALL_LIFETIME + 20:
                self.stall()
            elif choice == "garbage":
                self.garbage()
            elif choice == "half_handshake" and remaining > 30:
                self.half_handshake()
            elif choice == "publisher_restart" and remaining > 30:
                log("fault: publisher killed and started again")
                self.restart_publisher()
        log("faults stopped; waiting for the players' runs to end")
        churn.popen.wait()
        probes.popen.wait()
        self.stop_sampling.set()
        sampler.join()
        self.reap_stalls(everything=True)
        for thread in self.threads:
            thread.join(timeout=30)
        final = closes(get_text(self.api(self.edge_api, "/metrics")))
        streams = get_json(self.api(self.edge_api, "/api/v1/streams"))
        pull_reconnects = sum(u["reconnects"] for s in streams if s["name"] == "soak" for u in s["upstreams"])
        for process in (self.publisher, self.edge, self.origin):
            process.stop()
        return self.verdict(final, pull_reconnects)

    # ------------------------------------------------------------ the verdict
    def verdict(self, final_closes, pull_reconnects):
        try:
            with open(os.path.join(self.work, "probes.json")) as f:
                probes = json.load(f)
            with open(os.path.join(self.work, "churn.json")) as f:
                churn = json.load(f)
        except (OSError, ValueError) as error:
            print(f"verdict: FAIL (no rtmp-bench summary: {error})")
            return 1
        rows = [row for row in self.samples if "edge_rss_mib" in row]
        self.print_table(rows)
        checks = []
        quarter = max(1, len(rows) // 4)
        for key, label in (("edge_rss_mib", "edge RSS (MiB)"), ("edge_fds", "edge open files")):
            second = [row[key] for row in rows[quarter:2 * quarter]]
            last = [row[key] for row in rows[-quarter:]]
            if second and last:
                a, b = sum(second) / len(second), sum(last) / len(last)
                change = (b - a) / a * 100
                checks.append((abs(change) <= 10, f"{label} flat: second quarter mean {a:.1f}, last quarter {b:.1f} ({change:+.1f} %)"))
        sequence = probes["sequence"]
        changes = self.publisher_starts - 1
        checks.append((probes["failed"] == 0 and probes["playing"] == PROBES,
                       f"probes: {probes['playing']} played, {probes['failed']} failed {probes['errors']}"))
        checks.append((sequence["lost"] == 0 and sequence["reordered"] == 0 and sequence["messages"] > 0,
                       f"probes: {sequence['messages']} stamped messages, {sequence['lost']} lost, {sequence['reordered']} reordered, "
                       f"{sequence['resumed']} resumed at a keyframe"))
        checks.append((sequence["new_publisher"] == PROBES * changes,
                       f"probes saw {sequence['new_publisher']} publisher changes = {PROBES} x {changes} restarts "
                       f"({self.faults['publisher_restart']} of the publisher, {self.faults['origin_restart']} with the origin)"))
        for fault, reason in (("stall", "too_slow"), ("garbage", "handshake_failed"), ("half_handshake", "handshake_timeout")):
            got = final_closes.get(reason, 0)
            checks.append((got == self.faults[fault], f"{self.faults[fault]} {fault} faults, {got} closed as {reason}"))
        checks.append((pull_reconnects >= self.faults["origin_restart"],
                       f"edge pull reconnects: {pull_reconnects} for {self.faults['origin_restart']} origin restarts"))
        print(f"churn: {churn['churn_cycles']} cycles ({churn['churn_per_s']}/s), {churn['failed']} failed {churn['errors']}")
        loads = [row["load1"] for row in self.samples]
        if loads:
            print(f"machine load (1 min average) during the run: mean {sum(loads) / len(loads):.2f}, max {max(loads):.2f} on {os.cpu_count()} cores")
        ok = all(passed for passed, _ in checks)
        for passed, text in checks:
            print(f"  [{'ok' if passed else 'FAIL'}] {text}")
        print(f"verdict: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1

    def print_table(self, rows):
        columns = [("t", "min"), ("edge_rss_mib", "edge RSS MiB"), ("edge_fds", "edge fds"), ("edge_cpu_pct", "edge CPU %"),
                   ("origin_rss_mib", "origin RSS MiB"), ("players", "players"), ("connections", "conns"),
                   ("too_slow", "too slow"), ("handshake_failed", "hs failed"), ("handshake_timeout", "hs timeout"),
                   ("pull_reconnects", "pull reconn."), ("faults", "faults"), ("load1", "load")]
        # At most 13 rows: one every 5 minutes of an hour (and the last).
        step = max(1, len(rows) // 12)
        chosen = rows[step - 1::step]
        if rows and chosen[-1] is not rows[-1]:
            chosen.append(rows[-1])
        print("| " + " | ".join(title for _, title in columns) + " |")
        print("|" + "---:|" * len(columns))
        for row in chosen:
            cells = []
            for key, _ in columns:
                value = row.get(key)
                if key == "t":
                    value = f"{value / 60:.1f}"
                cells.append("-" if value is None else str(value))
            print("| " + " | ".join(cells) + " |")


def main():
    # Run in the background, SIGINT may come in ignored; either signal ends the run through
    # the `finally` below, which kills every process it started.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: sys.exit(128 + number))
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    bin_dir, fixture, work = sys.argv[2], sys.argv[3], sys.argv[4]
    soak = Soak(minutes, bin_dir, fixture, work)
    try:
        code = soak.run()
    finally:
        for process in Process.started:
            process.signal(signal.SIGCONT)
            process.kill()
    sys.exit(code)


if __name__ == "__main__":
    main()
