#!/usr/bin/env python3
"""Runs .tflite models through TensorFlow Lite Micro's reference interpreter.

The PyPI package `tflite-micro` builds TFLM's reference kernels for x86; they compute bit-exactly
what TFLM computes on a device. `cargo xtask setup` installs it in `target/tflm-venv`, and the
`tests` crate (`tests::tflm::Tflm`) calls this script with that venv's python.

Usage:
  run_tflm.py MODEL.tflite INPUTS.bin SAMPLES OUTPUTS.bin
      INPUTS.bin holds SAMPLES int8 inputs back to back, each exactly the size of the model's
      input 0. Each sample runs through a fresh interpreter state (reset between samples), and
      output 0 of each, flattened in row-major order, is written to OUTPUTS.bin, back to back.
      Input 0 and output 0 must be int8.
  run_tflm.py MODEL.tflite INPUTS.bin SAMPLES OUTPUTS.bin --float-io IN_SCALE IN_ZP OUT_SCALE OUT_ZP
      The same for a float-interface model (float32 input 0 and output 0, the converter's
      default): each int8 input q is given to TFLM as float32 (q - IN_ZP) * IN_SCALE, which its
      QUANTIZE turns back into q exactly, and each float32 output y is written as the int8
      round(y / OUT_SCALE) + OUT_ZP, the value its DEQUANTIZE read.
  run_tflm.py --bench MODEL.tflite N
      Prints `tflm_ms_per_inference <mean ms>` over N invokes, after one warm-up, on a fixed
      (seeded) random input.
  run_tflm.py --bench-litert MODEL.tflite N
      The same timing with LiteRT (PyPI `ai-edge-litert`, XNNPACK, one thread) if it is installed
      in this python: prints `litert_ms_per_inference <mean ms>`, or `litert_unavailable` (exit
      0) if it is not. Setup does not install it: it is a speed reference, not a check.
  run_tflm.py --describe MODEL.tflite
      Prints input 0 and output 0 as JSON: shape, dtype, scale and zero point (null for an
      unquantized tensor, lists for a per-channel one).

Errors go to stderr as `run_tflm.py: error: ...` with exit status 2 (bad arguments or files) or
1 (TFLM failed).
"""

import json
import sys
import time

# The arena TFLM plans every tensor in. The package's default, 10x the model's size, is too small
# for models with large activations and few weights; host memory is cheap, so be generous.
MIN_ARENA_BYTES = 64 * 1024 * 1024
ARENA_MODEL_FACTOR = 10
BENCH_SEED = 0


class UsageError(Exception):
    """A bad argument or input file (exit status 2)."""


class TflmFailure(Exception):
    """TFLM refused the model or failed to run it (exit status 1)."""


def load(model_path):
    """Reads MODEL.tflite and builds a TFLM interpreter for it with a generous arena."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        raise UsageError(
            f"cannot import tflite_micro with {sys.executable} ({e}): "
            "run `cargo xtask setup`, which installs it in target/tflm-venv"
        ) from e
    try:
        with open(model_path, "rb") as f:
            model = f.read()
    except OSError as e:
        raise UsageError(f"cannot read model {model_path}: {e.strerror}") from e
    arena = max(MIN_ARENA_BYTES, ARENA_MODEL_FACTOR * len(model))
    try:
        return runtime.Interpreter.from_bytes(model, arena_size=arena)
    except Exception as e:  # a corrupt flatbuffer raises struct.error, IndexError, ...
        raise TflmFailure(
            f"{model_path} is not a model TFLM can load ({type(e).__name__}: {e})"
        ) from e


def count(text, what, minimum):
    """Parses a non-negative integer argument."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < minimum:
        raise UsageError(f"{what} must be an integer >= {minimum}, got {text!r}")
    return value


def element_count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def number(text, what, kind):
    """Parses a float or integer argument."""
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{what} must be a number, got {text!r}") from None


def run(model_path, inputs_path, samples_text, outputs_path, float_io=None):
    import numpy as np

    samples = count(samples_text, "SAMPLES", 0)
    interpreter = load(model_path)
    inp = interpreter.get_input_details(0)
    out = interpreter.get_output_details(0)
    want = np.float32 if float_io else np.int8
    for name, details in (("input", inp), ("output", out)):
        if np.dtype(details["dtype"]) != want:
            raise UsageError(
                f"{model_path}: {name} 0 is {np.dtype(details['dtype']).name}, but "
                f"{np.dtype(want).name} was asked for (--float-io for float32 interfaces)"
            )
    if float_io:
        in_scale, in_zp, out_scale, out_zp = (
            np.float32(number(float_io[0], "IN_SCALE", float)),
            number(float_io[1], "IN_ZP", int),
            np.float32(number(float_io[2], "OUT_SCALE", float)),
            number(float_io[3], "OUT_ZP", int),
        )
    shape = [int(d) for d in inp["shape"]]
    size = element_count(shape)
    try:
        with open(inputs_path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read inputs {inputs_path}: {e.strerror}") from e
    if len(data) != samples * size:
        raise UsageError(
            f"{inputs_path} holds {len(data)} bytes, but {samples} samples of input shape "
            f"{shape} ({size} int8 each) need {samples * size}"
        )
    batch = np.frombuffer(data, dtype=np.int8).reshape([samples] + shape)
    results = []
    for x in batch:
        # Every sample starts from the state a freshly prepared interpreter has, so a stateful
        # model's outputs do not depend on the samples before it.
        interpreter.reset()
        if float_io:
            x = (x.astype(np.float32) - np.float32(in_zp)) * in_scale
        interpreter.set_input(np.ascontiguousarray(x), 0)
        interpreter.invoke()
        y = np.asarray(interpreter.get_output(0))
        if float_io:
            y = np.clip(np.rint(y / out_scale) + out_zp, -128, 127)
        results.append(np.asarray(y, dtype=np.int8).reshape(-1).tobytes())
    with open(outputs_path, "wb") as f:
        f.write(b"".join(results))


def random_input(details, rng):
    import numpy as np

    dtype = np.dtype(details["dtype"])
    shape = [int(d) for d in details["shape"]]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(size=shape).astype(dtype)


def bench(model_path, iterations_text):
    import numpy as np

    iterations = count(iterations_text, "N", 1)
    interpreter = load(model_path)
    x = random_input(interpreter.get_input_details(0), np.random.default_rng(BENCH_SEED))
    interpreter.set_input(x, 0)
    interpreter.invoke()  # warm-up: first-touch of the arena, caches
    start = time.perf_counter()
    for _ in range(iterations):
        interpreter.invoke()
    elapsed = time.perf_counter() - start
    print(f"tflm_ms_per_inference {elapsed * 1000.0 / iterations:.6f}")


def bench_litert(model_path, iterations_text):
    import numpy as np

    iterations = count(iterations_text, "N", 1)
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        print("litert_unavailable")
        return
    interpreter = Interpreter(model_path=model_path, num_threads=1)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    x = random_input(
        {"dtype": details["dtype"], "shape": details["shape"]}, np.random.default_rng(BENCH_SEED)
    )
    interpreter.set_tensor(details["index"], x)
    interpreter.invoke()
    start = time.perf_counter()
    for _ in range(iterations):
        interpreter.invoke()
    elapsed = time.perf_counter() - start
    print(f"litert_ms_per_inference {elapsed * 1000.0 / iterations:.6f}")


def tensor_json(details):
    import numpy as np

    q = details["quantization_parameters"]
    scales = [float(s) for s in q["scales"]]
    zero_points = [int(z) for z in q["zero_points"]]

    def one_or_list(values):
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    return {
        "shape": [int(d) for d in details["shape"]],
        "dtype": np.dtype(details["dtype"]).name,
        "scale": one_or_list(scales),
        "zero_point": one_or_list(zero_points),
    }


def describe(model_path):
    interpreter = load(model_path)
    print(
        json.dumps(
            {
                "input": tensor_json(interpreter.get_input_details(0)),
                "output": tensor_json(interpreter.get_output_details(0)),
            }
        )
    )


def main(argv):
    if len(argv) == 1 and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(argv) == 3 and argv[0] == "--bench":
        bench(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "--bench-litert":
        bench_litert(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "--describe":
        describe(argv[1])
    elif len(argv) == 4 and not argv[0].startswith("--"):
        run(*argv)
    elif len(argv) == 9 and not argv[0].startswith("--") and argv[4] == "--float-io":
        run(*argv[:4], float_io=argv[5:])
    else:
        raise UsageError(
            "usage: run_tflm.py MODEL.tflite INPUTS.bin SAMPLES OUTPUTS.bin "
            "[--float-io IN_SCALE IN_ZP OUT_SCALE OUT_ZP] | "
            "--bench MODEL.tflite N | --describe MODEL.tflite (--help for details)"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError as e:
        print(f"run_tflm.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    except TflmFailure as e:
        print(f"run_tflm.py: error: {e}", file=sys.stderr)
        sys.exit(1)
    except (RuntimeError, ValueError) as e:
        print(f"run_tflm.py: error: TFLM failed: {e}", file=sys.stderr)
        sys.exit(1)
