#!/usr/bin/env python3
"""Checks for scripts/cluster-test.sh (and scripts/soak.sh): the relay's HTTP API, waited on
until a condition over its JSON holds, and players' files judged by packet hashes.

  cluster_check.py get URL                      print the JSON at URL
  cluster_check.py wait URL EXPR [SECONDS]      poll URL until EXPR (Python, over `j`,
                                                the JSON) is true; print the JSON
  cluster_check.py run SOURCE OUT [--cut] [--min-video N] [--label L]
        OUT's video and audio packets (ffprobe MD5 per packet) must be one contiguous
        run of SOURCE's, the video starting at a keyframe; --cut leaves out the last
        packet of each (a player killed mid-packet); prints "LABEL: N video packets from
        #START"

Only the standard library; runs inside a network namespace through `ip netns exec`.
"""

import json
import subprocess
import sys
import time
import urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def wait(url, expression, seconds):
    deadline = time.monotonic() + seconds
    last = None
    while True:
        try:
            last = get(url)
            if eval(expression, {}, {"j": last}):  # noqa: S307 (the test's own expressions)
                return last
        except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            sys.exit(f"wait: {url}: {expression!r} not true within {seconds} s; last: {json.dumps(last)[:2000]}")
        time.sleep(0.2)


def packets(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_packets", "-show_data_hash", "MD5", "-show_entries",
         "packet=codec_type,size,flags,data_hash", "-of", "compact=p=0", path],
        check=True, capture_output=True, text=True).stdout
    by_type = {}
    for line in out.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split("|") if "=" in kv)
        if "codec_type" in fields:
            by_type.setdefault(fields["codec_type"], []).append(
                (fields.get("data_hash", ""), fields.get("size", ""), fields.get("flags", "").startswith("K")))
    return by_type


def contiguous_start(source, got):
    """Index in source where got is a contiguous run, or None."""
    keys = [(h, s) for h, s, _ in source]
    wanted = [(h, s) for h, s, _ in got]
    for start in range(len(keys) - len(wanted) + 1):
        if keys[start] == wanted[0] and keys[start:start + len(wanted)] == wanted:
            return start
    return None


def run(source_path, out_path, cut, min_video, label):
    source, got = packets(source_path), packets(out_path)
    summary = []
    for codec_type in ("video", "audio"):
        packets_got = got.get(codec_type, [])
        if cut and packets_got:
            packets_got = packets_got[:-1]
        minimum = min_video if codec_type == "video" else 1
        if len(packets_got) < minimum:
            sys.exit(f"{label}: {len(packets_got)} {codec_type} packets, expected at least {minimum}")
        start = contiguous_start(source.get(codec_type, []), packets_got)
        if start is None:
            sys.exit(f"{label}: {codec_type} packets are not one contiguous run of the source's "
                     f"({len(packets_got)} packets; a gap, a repeat or a changed packet)")
        if codec_type == "video" and not source["video"][start][2]:
            sys.exit(f"{label}: the first video packet (source #{start}) is not a keyframe")
        summary.append(f"{len(packets_got)} {codec_type} packets from #{start}")
    print(f"{label}: " + ", ".join(summary))


def main(argv):
    if len(argv) >= 2 and argv[0] == "get":
        print(json.dumps(get(argv[1])))
    elif len(argv) >= 3 and argv[0] == "wait":
        print(json.dumps(wait(argv[1], argv[2], float(argv[3]) if len(argv) > 3 else 15)))
    elif len(argv) >= 3 and argv[0] == "run":
        options = argv[3:]
        min_video = int(options[options.index("--min-video") + 1]) if "--min-video" in options else 1
        label = options[options.index("--label") + 1] if "--label" in options else argv[2]
        run(argv[1], argv[2], "--cut" in options, min_video, label)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
