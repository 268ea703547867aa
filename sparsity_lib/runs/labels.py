"""How the book names things: optimizers, regularization strengths and settings, as the paper writes them.

Shared by the verdicts (`claims`), the tables and the figures, so a setting reads the same everywhere
("Adam L2 1e-3", "SGD WD 1e-3").
"""
from __future__ import annotations

__all__ = ["format_strength", "net_label", "OPTIMIZER_NAMES", "regularizer_of", "setting_label"]

OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "amsgrad": "AMSGrad", "adamax": "Adamax",
                   "adagrad": "Adagrad", "adadelta": "Adadelta", "rmsprop": "RMSProp"}


def format_strength(value: float) -> str:
    """'1e-3' for 0.001, '2e-4' for 0.0002, '0' for 0 (the paper's way of writing lambda)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def setting_label(config: dict) -> str:
    """'Adam L2 1e-3', 'SGD WD 1e-3', 'Adam L2 0' for a record's config dict (optimizer, l2, wd)."""
    name = OPTIMIZER_NAMES.get(config["optimizer"], config["optimizer"])
    regularizer, strength = regularizer_of(config.get("l2", 0.0), config.get("wd", 0.0))
    return f"{name} {regularizer} {format_strength(strength)}"


def regularizer_of(l2: float, wd: float) -> tuple[str, float]:
    """('L2', l2) when there is no weight decay, ('WD', wd) when L2 is off, ('L2+WD', wd) for both."""
    if not wd:
        return "L2", float(l2)
    return ("WD", float(wd)) if not l2 else ("L2+WD", float(wd))


def net_label(config) -> str:
    """The network a config trains, at the size it is trained: 'BasicNet 32-0.25x', 'VGG-16 ×0.125'
    (VGG: the multiplier of every layer's features against the paper's VGG), plus the image size
    ('16x16') when it is not 32. `config`: a RunConfig or a record's config dict."""
    fields = config if isinstance(config, dict) else vars(config)
    model, width, size = fields.get("model", "basicnet"), float(fields.get("width", 1.0)), fields.get("image_size")
    if model.startswith("vgg"):
        name = f"VGG-{model[3:]} ×{width:g}"
    else:
        name = f"BasicNet {fields.get('first_width', 64)}-{width:g}x"
    return name if size in (None, 32) else f"{name}, {size}x{size}"
