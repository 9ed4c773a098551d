"""llama.cpp's HTTP server (through xllamacpp) as a process: `python llama_cpp_server.py MODEL.gguf PORT`.

Serves until it is terminated; `/health` answers 200 once the model is loaded.
"""

from __future__ import annotations

import sys
import threading

import xllamacpp


def main(model: str, port: int) -> None:
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = 2048
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.warmup = False
    params.verbosity = -1
    params.ui = False
    server = xllamacpp.Server(params)
    print(f"serving on {server.listening_address}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
