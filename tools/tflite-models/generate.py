"""Converter-made int8 .tflite models for the Keras-head import tests.

Builds small Keras models with seeded weights, converts each with the TensorFlow Lite converter
(full int8 quantization: a seeded representative dataset, int8 input and output, or float32 for
the float-interface model) and writes
`models/<name>.tflite`. The committed files are what `host-trainer/tests/tflite_keras_heads.rs`
imports and runs side by side with TFLite Micro; README.md gives the exact environment.

Usage: python generate.py [OUT_DIR]   (default: models/ beside this script)
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

SEED = 20


def conv_flatten_dense():
    """Conv2D (same, stride 2, fused ReLU) + Flatten + Dense. Keras 3's Flatten of a fully
    known feature shape becomes RESHAPE with a constant [-1, N] shape."""
    x = keras.Input((12, 12, 3))
    y = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    y = layers.Flatten()(y)
    y = layers.Dense(10)(y)
    return keras.Model(x, y)


def conv_reshape_dense():
    """Conv2D (valid) + Reshape((-1,)) + Dense + Softmax: Reshape's dynamic-batch
    SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain before FULLY_CONNECTED."""
    x = keras.Input((10, 10, 2))
    y = layers.Conv2D(6, 3, padding="valid", activation="relu")(x)
    y = layers.Reshape((-1,))(y)
    y = layers.Dense(8)(y)
    y = layers.Softmax()(y)
    return keras.Model(x, y)


def relu_between():
    """Standalone RELU and RELU6 where the converter has nothing to fuse them into: RELU on the
    model input, RELU6 after a global average (MEAN), RELU6 after Flatten; a valid stride-2
    conv and a same-padded max pool between."""
    x = keras.Input((16, 16, 3))
    y = layers.Activation("relu")(x)
    y = layers.Conv2D(8, 3, strides=2, padding="valid")(y)
    y = layers.MaxPooling2D(2, padding="same")(y)
    y = layers.Conv2D(8, 3, padding="same")(y)
    a = layers.GlobalAveragePooling2D()(y)
    a = layers.Activation("relu6")(a)
    a = layers.Dense(8)(a)
    b = layers.Flatten()(y)
    b = layers.Activation("relu6")(b)
    b = layers.Dense(8)(b)
    y = layers.Add()([a, b])
    y = layers.Dense(5)(y)
    return keras.Model(x, y)


def flatten_spellings():
    """The other spellings of a dynamic-batch flatten, each feeding a RESHAPE: PACK of
    tf.shape(t)[0], and CONCATENATION of a shape slice with a constant."""
    x = keras.Input((6, 6, 4))
    y = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu6")(x)
    n = 3 * 3 * 4

    def pack_flatten(t):
        return tf.reshape(t, [tf.shape(t)[0], n])

    def concat_flatten(t):
        return tf.reshape(t, tf.concat([tf.shape(t)[:1], [n]], axis=0))

    heads = []
    for flatten in (pack_flatten, concat_flatten):
        h = layers.Lambda(flatten, output_shape=(n,))(y)
        heads.append(layers.Dense(6, activation="relu")(h))
    y = layers.Add()(heads)
    y = layers.Dense(4)(y)
    return keras.Model(x, y)


def _flatten_head(gather):
    x = keras.Input((6, 6, 4))
    y = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    n = 3 * 3 * 4

    def flatten(t):
        batch = tf.gather(tf.shape(t), [0]) if gather else tf.shape(t)[:1]
        return tf.reshape(t, tf.concat([batch, tf.constant([n], tf.int32)], axis=0))

    y = layers.Lambda(flatten, output_shape=(n,))(y)
    y = layers.Dense(6)(y)
    return keras.Model(x, y)


def gather_flatten():
    """A flatten whose batch comes from GATHER of the shape vector. TFLM's GATHER has no int32
    kernel, so TFLM cannot run this file; the test checks instead that it imports to the same
    blob as `gather_flatten_twin` (same seed, weights and calibration, STRIDED_SLICE instead of
    GATHER), which TFLM runs."""
    return _flatten_head(gather=True)


def gather_flatten_twin():
    """`gather_flatten` with STRIDED_SLICE in place of GATHER."""
    return _flatten_head(gather=False)


def flatten_unknown_width():
    """Refused on import (and by TFLM at Prepare): tf.reshape(t, [tf.shape(t)[0], -1]) with a
    dynamic batch leaves the converter unable to infer the width, and it records [1, 1]."""
    x = keras.Input((6, 6, 4))
    y = layers.Conv2D(4, 3, strides=2, padding="same")(x)
    y = layers.Lambda(lambda t: tf.reshape(t, [tf.shape(t)[0], -1]), output_shape=(36,))(y)
    y = layers.Dense(4)(y)
    return keras.Model(x, y)


def data_dependent_reshape():
    """Refused on import: the reshape's shape depends on the data (an ARG_MAX of the
    activations), so it is not static."""
    x = keras.Input((6, 6, 4))
    y = layers.Conv2D(4, 3, strides=2, padding="same")(x)

    def reshape(t):
        flat = tf.reshape(t, [1, 36])
        i = tf.argmax(flat, axis=1, output_type=tf.int32)
        return tf.reshape(t, tf.concat([tf.minimum(i, 0) + 1, [36]], axis=0))

    y = layers.Lambda(reshape, output_shape=(36,))(y)
    y = layers.Dense(4)(y)
    return keras.Model(x, y)


def float_interface():
    """The converter's default interface when `inference_input_type` is not set: float32 in and
    out, a QUANTIZE after the input and a DEQUANTIZE before the output; inside, a same-padded
    conv, max pool, Flatten, Dense and Softmax."""
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    y = layers.MaxPooling2D(2)(y)
    y = layers.Flatten()(y)
    y = layers.Dense(10)(y)
    y = layers.Softmax()(y)
    return keras.Model(x, y)


def mul_broadcast():
    """Multiply both ways a squeeze-and-excite block and a gated branch spell it: a per-channel
    gate (GlobalAveragePooling -> Dense -> Reshape to [1, 1, C]) times the feature map, MUL
    broadcasting [1, 1, 1, C] over [1, H, W, C], and a same-shape MUL of two branches."""
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    g = layers.GlobalAveragePooling2D()(y)
    g = layers.Dense(8, activation="relu")(g)
    g = layers.Reshape((1, 1, 8))(g)
    y = layers.Multiply()([y, g])
    z = layers.Conv2D(8, 1)(y)
    y = layers.Multiply()([y, z])
    y = layers.Flatten()(y)
    y = layers.Dense(5)(y)
    return keras.Model(x, y)


def se_block():
    """Squeeze-and-excite with a sigmoid gate: the Dense's sigmoid stays a LOGISTIC after
    FULLY_CONNECTED (the converter fuses only ReLU-like activations), whose 1/256-scaled output
    MUL broadcasts over the feature map; a standalone sigmoid on the model input covers all 256
    int8 input values."""
    x = keras.Input((8, 8, 4))
    s = layers.Activation("sigmoid")(x)
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(s)
    g = layers.GlobalAveragePooling2D()(y)
    g = layers.Dense(4, activation="relu")(g)
    g = layers.Dense(8, activation="sigmoid")(g)
    g = layers.Reshape((1, 1, 8))(g)
    y = layers.Multiply()([y, g])
    y = layers.Flatten()(y)
    y = layers.Dense(5)(y)
    return keras.Model(x, y)


def hard_swish():
    """Hard swish as MobileNetV3 writes it, x * relu6(x + 3) / 6, which the converter fuses into
    HARD_SWISH: on the model input (all 256 int8 values) and after a conv, whose output is the
    model's, so every byte of the second is compared."""
    x = keras.Input((8, 8, 3))

    def hswish(t):
        return t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0)

    y = layers.Lambda(hswish)(x)
    y = layers.Conv2D(8, 3, strides=2, padding="same")(y)
    y = layers.Lambda(hswish)(y)
    return keras.Model(x, y)


def logistic_head():
    """A sigmoid alone, its LOGISTIC output the model's: every output byte of the kernel over
    the whole int8 input domain is compared."""
    x = keras.Input((4, 4, 16))
    y = layers.Activation("sigmoid")(x)
    return keras.Model(x, y)


def mul_head():
    """MUL as the model's output, so every byte of it is compared: the model input (all 256
    int8 values) times a broadcast gate from its own global average, then that product times a
    1x1 conv of the input (same shape)."""
    x = keras.Input((6, 6, 8))
    g = layers.GlobalAveragePooling2D()(x)
    g = layers.Dense(8)(g)
    g = layers.Reshape((1, 1, 8))(g)
    y = layers.Multiply()([x, g])
    z = layers.Conv2D(8, 1)(x)
    y = layers.Multiply()([y, z])
    return keras.Model(x, y)


def flatten_activations():
    """A Flatten read three ways, so the converter cannot move the activations before it (as it
    does when the Flatten has one reader): straight into a Dense, and through a standalone RELU,
    RELU6 and sigmoid on the `[1, N]` tensor, each into its own Dense."""
    x = keras.Input((4, 4, 3))
    y = layers.Conv2D(4, 3, padding="same")(x)
    f = layers.Flatten()(y)
    heads = [layers.Dense(6)(f)]
    for act in ("relu", "relu6", "sigmoid"):
        heads.append(layers.Dense(6)(layers.Activation(act)(f)))
    y = layers.Add()(heads[:2])
    y = layers.Add()([y, heads[2]])
    y = layers.Add()([y, heads[3]])
    return keras.Model(x, y)


def requantize_between():
    """One tensor concatenated with a small-range and with a large-range branch: CONCATENATION
    needs its inputs at its output's scale, so the converter requantizes the shared tensor for
    one of them with a mid-graph int8 -> int8 QUANTIZE."""
    x = keras.Input((6, 6, 4))
    t = layers.Conv2D(4, 1)(x)
    a = layers.Conv2D(4, 3, padding="same")(x)
    a = layers.Lambda(lambda v: v * 0.1)(a)
    b = layers.Conv2D(4, 3, padding="same")(x)
    b = layers.Lambda(lambda v: v * 10.0)(b)
    y1 = layers.Concatenate()([t, a])
    y2 = layers.Concatenate()([t, b])
    y = layers.Add()([layers.Conv2D(4, 1)(y1), layers.Conv2D(4, 1)(y2)])
    return keras.Model(x, y)


def _hard_sigmoid(t):
    return tf.nn.relu6(t + 3.0) * (1.0 / 6.0)


def hard_sigmoid_se():
    """Squeeze-and-excite with hard-sigmoid gates, three spellings: a Dense with Keras's
    `hard_sigmoid` activation (the converter folds the + 3 into the bias and the ReLU6 into the
    FULLY_CONNECTED, leaving a MUL by the constant 1/6), MobileNetV3's 1x1 conv gate with
    `relu6(x + 3) / 6` (CONV_2D, then MUL by 1/6), and the hard sigmoid of a global average with
    nothing to fold into (ADD of the constant 3, ..., MUL by 1/6); each gate MULs the map."""
    x = keras.Input((6, 6, 8))
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    g = layers.GlobalAveragePooling2D()(y)
    g = layers.Dense(4, activation="relu")(g)
    g = layers.Dense(8, activation="hard_sigmoid")(g)
    g = layers.Reshape((1, 1, 8))(g)
    y = layers.Multiply()([y, g])
    g = layers.GlobalAveragePooling2D(keepdims=True)(y)
    g = layers.Conv2D(4, 1, activation="relu")(g)
    g = layers.Conv2D(8, 1)(g)
    g = layers.Lambda(_hard_sigmoid)(g)
    y = layers.Multiply()([y, g])
    g = layers.GlobalAveragePooling2D(keepdims=True)(y)
    g = layers.Lambda(_hard_sigmoid)(g)
    y = layers.Multiply()([y, g])
    return keras.Model(x, y)


def hard_sigmoid_head():
    """`relu6(x + 3) / 6` on the model input, its result the model's output: the constant ADD
    and MUL the converter writes, and what lies between, compared byte for byte over the whole
    int8 input domain."""
    x = keras.Input((4, 4, 16))
    y = layers.Lambda(_hard_sigmoid)(x)
    return keras.Model(x, y)


def newaxis_gate():
    """A sigmoid gate indexed to `[1, 1, 1, C]` with new axes, `g[:, tf.newaxis, tf.newaxis, :]`
    (the converter writes a RESHAPE and a STRIDED_SLICE with a new-axis mask that keeps every
    element), MUL over the map, and an ellipsis slice `t[..., :]` of the product: views, both."""
    x = keras.Input((4, 4, 3))
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    g = layers.GlobalAveragePooling2D()(y)
    g = layers.Dense(8, activation="sigmoid")(g)
    g = layers.Lambda(lambda t: t[:, tf.newaxis, tf.newaxis, :])(g)
    y = layers.Multiply()([y, g])
    y = layers.Lambda(lambda t: t[..., :])(y)
    y = layers.Flatten()(y)
    y = layers.Dense(6)(y)
    return keras.Model(x, y)


def channel_slice():
    """`t[..., :4]` keeps half the channels: imported as a 1x1 convolution with one-hot weights
    and the identity requantization (each kept channel copied bit for bit)."""
    x = keras.Input((4, 4, 3))
    y = layers.Conv2D(8, 3, padding="same")(x)
    y = layers.Lambda(lambda t: t[..., :4])(y)
    return keras.Model(x, y)


MODELS = [
    conv_flatten_dense,
    conv_reshape_dense,
    relu_between,
    flatten_spellings,
    gather_flatten,
    gather_flatten_twin,
    flatten_unknown_width,
    data_dependent_reshape,
    float_interface,
    mul_broadcast,
    se_block,
    hard_swish,
    logistic_head,
    mul_head,
    flatten_activations,
    requantize_between,
    hard_sigmoid_se,
    hard_sigmoid_head,
    newaxis_gate,
    channel_slice,
]

TWINS = {gather_flatten_twin: gather_flatten}

# Models converted with the converter's default float32 input and output.
FLOAT_IO = {float_interface}


def convert(model, rng, int8_io=True):
    shape = (1,) + tuple(model.input_shape[1:])

    def representative():
        for _ in range(64):
            yield [rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)]

    # Through a SavedModel with a dynamic batch (Keras 3's `Model.export`): TF 2.16's
    # from_keras_model and from_concrete_functions fail on Keras 3 variables ("missing attribute
    # 'value'").
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "models")
    os.makedirs(out, exist_ok=True)
    # All in order, every time: Keras names layers by how many came before, and the names are in
    # the files, so building a subset gives the same numbers in different bytes.
    for build in MODELS:
        # A twin shares its original's seed, hence its weights and calibration data.
        seed = SEED + MODELS.index(TWINS.get(build, build))
        keras.utils.set_random_seed(seed)
        model = build()
        data = convert(model, np.random.default_rng(seed), int8_io=build not in FLOAT_IO)
        path = os.path.join(out, build.__name__ + ".tflite")
        with open(path, "wb") as f:
            f.write(data)
        ops = [op["op_name"] for op in tf.lite.Interpreter(model_content=data)._get_ops_details()]
        print(f"{path}: {len(data)} bytes, {' '.join(ops)}", flush=True)


if __name__ == "__main__":
    main()
