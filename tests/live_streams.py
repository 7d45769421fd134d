"""Test helpers for tests/test_live.py and benchmarks/bench_live.py: shared videos served as MPEG-TS on loopback.

``serve_mpegts`` remuxes a file's packets (no re-encoding: the receiver decodes the very same pictures as a
reader of the file) to ``tcp://127.0.0.1:PORT?listen=1`` on a thread; FFmpeg's tcp protocol accepts one client.
``write_mpegts`` re-encodes the first frames of a video into an MPEG-TS file at a chosen frame rate.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_mpegts(src: Path, dst: Path, frames: int, fps: int, first: int = 0) -> Path:
    """Frames ``first`` .. ``first + frames - 1`` of ``src`` re-encoded (H.264, no B-frames) at ``fps`` into
    ``dst`` (.ts), timed anew: frame i at i / fps seconds."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        stream_in = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = stream_in.codec_context.width, stream_in.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"bf": "0", "g": str(fps), "crf": "18", "preset": "veryfast"}
        stream.time_base = Fraction(1, fps)
        for j, frame in enumerate(inp.decode(stream_in)):
            i = j - first
            if i < 0:
                continue
            if i >= frames:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dst


class MpegTsServer:
    """Serve ``path``'s video packets as MPEG-TS to one client on 127.0.0.1:``port``, from a subprocess (PyAV
    holds the GIL while FFmpeg waits for the client to connect, which would stall a receiver in the same
    process).

    ``realtime``: each packet is sent at its decoding time (a live sender), else as fast as the receiver
    takes them. ``max_packets`` stops early; ``cut_after`` closes the connection after that many packets (a
    dropped stream), and the server then listens again for the reconnect and sends the file from its start.
    ``sent`` (after ``join``) is the number of packets sent.
    """

    def __init__(self, path: Path, port: int, realtime: bool = False, max_packets: int | None = None,
                 cut_after: int | None = None):
        self.args = [str(path), str(port), "1" if realtime else "0", str(max_packets or 0), str(cut_after or 0)]
        self.sent: int | None = None
        self.port = port
        self._proc: subprocess.Popen | None = None

    def start(self) -> "MpegTsServer":
        self._proc = subprocess.Popen([sys.executable, __file__, *self.args], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not _listening(self.port):  # ready when FFmpeg listens
            if self._proc.poll() is not None:
                raise RuntimeError(f"the MPEG-TS server exited with {self._proc.returncode}")
            time.sleep(0.02)
        return self

    def join(self, timeout: float = 60.0) -> int:
        out, _ = self._proc.communicate(timeout=timeout)
        self.sent = int(out.strip().split()[-1]) if out.strip() else 0
        return self.sent

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, read from /proc (a probe connection would be the client)."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        time.sleep(0.5)
        return True
    want = f"0100007F:{port:04X}"
    return any(r.split()[1] == want and r.split()[3] == "0A" for r in rows)


def _serve(path: str, port: int, realtime: bool, max_packets: int, cut_after: int) -> int:
    """Send packets; after ``cut_after`` of them drop the client, listen again and send the file again from its
    start (a restarted camera server: a new stream starts at a keyframe, with its headers)."""
    sent = 0
    while True:
        with av.open(path) as inp:
            stream_in = inp.streams.video[0]
            out = av.open(f"tcp://127.0.0.1:{port}?listen=1", "w", format="mpegts",
                          container_options={"flush_packets": "1"})  # a live sender: each packet goes out at once
            stream_out = out.add_stream_from_template(stream_in)
            t0, cut = None, False
            for packet in inp.demux(stream_in):
                if packet.dts is None or packet.size == 0:
                    continue
                if max_packets and sent >= max_packets:
                    break
                if realtime:
                    # paced by decoding time: B-frames make presentation times jump back and forth
                    at = float(packet.dts * stream_in.time_base)
                    delay = t0 + at - time.monotonic() if t0 is not None else 0.0
                    if delay > 0:
                        time.sleep(delay)
                packet.stream = stream_out
                out.mux(packet)  # the first one waits for the client to connect: the clock starts after it
                if realtime and t0 is None:
                    t0 = time.monotonic() - float(packet.dts * stream_in.time_base)
                sent += 1
                if cut_after and sent == cut_after:
                    cut = True
                    break
            out.close()
        if not cut:
            return sent


if __name__ == "__main__":
    a = sys.argv[1:]
    print(_serve(a[0], int(a[1]), a[2] == "1", int(a[3]), int(a[4])), flush=True)
