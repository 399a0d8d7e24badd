"""Reaching inside a model: sub-models that end at a layer, and the activation after each convolution."""
import keras


def layer_model(model, output):
    """raw pixels -> `output` (a layer's output or input tensor) of `model`."""
    return keras.Model(model.input, output)


ACTIVATIONS = (keras.layers.Activation, keras.layers.LeakyReLU, keras.layers.ReLU)


def conv_activations(model):
    """Names of the layers that give convolutional feature maps after their non-linearity: for each Conv2D,
    the first activation downstream of it (conv -> BN -> activation, or in a residual block conv -> BN -> sum ->
    activation). A residual block's 1x1 projections (named shortcut*) are not listed."""
    consumers = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for tensor in layer.input if isinstance(layer.input, list) else [layer.input]:
            consumers.setdefault(id(tensor._keras_history.operation), []).append(layer)
    names = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D) or layer.name.startswith("shortcut"):
            continue
        node = layer
        for _ in range(3):
            after = consumers.get(id(node), [])
            if len(after) != 1 or not isinstance(after[0], (keras.layers.BatchNormalization, keras.layers.Add,
                                                             *ACTIVATIONS)):
                break
            node = after[0]
            if isinstance(node, ACTIVATIONS):
                break
        names.append((node if isinstance(node, ACTIVATIONS) else layer).name)
    return list(dict.fromkeys(names))


def layer_roles(model):
    """Each convolutional activation named by its place: "block 4, conv 2: 384 filters, 6x6". A block is a run
    of convolutions at one resolution (they end at a pooling or a strided layer)."""
    roles, block, conv, size = {}, 0, 0, None
    for name in conv_activations(model):
        shape = model.get_layer(name).output.shape
        if shape[1] != size:
            block, conv, size = block + 1, 0, shape[1]
        conv += 1
        roles[name] = f"block {block}, conv {conv}: {shape[-1]} filters, {shape[1]}x{shape[2]}"
    return roles


def layer_rows(model):
    """One row per layer: name, role (convolutions and their activations by place), type, output shape, parameters."""
    roles = layer_roles(model)
    convs = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"
             and not layer.name.startswith("shortcut")]
    roles.update({name: role.split(":")[0] for name, role in zip(convs, roles.values())})
    return [(layer.name, roles.get(layer.name, ""), type(layer).__name__,
             str(tuple(layer.output.shape[1:])).replace(" ", ""), f"{layer.count_params():,}")
            for layer in model.layers if hasattr(layer, "output")]
