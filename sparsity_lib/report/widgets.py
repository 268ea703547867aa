"""An interactive explorer for the paper's Fig. 4 (Sec. 3): one weight under L2 vs weight decay.

`weight_explorer()` shows sliders for the learning rate, the regularization strength lambda and how
often a task gradient arrives, plus the optimizer, and redraws `figures.weight_trajectories` from
`optim.simulate_weight`. It needs a live Jupyter kernel; executed by papermill or rendered in the
static book it shows nothing useful, so the chapter always shows a plain figure too
(`explorer_figure` draws the same picture without widgets).
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from ..nets.optim import DEFAULT_LR, OPTIMIZERS
from ..runs.labels import OPTIMIZER_NAMES, format_strength
from . import figures
from .frames import l2_and_wd_settings, trajectory_frame

__all__ = ["explorer_figure", "explorer_settings", "STEPS", "weight_explorer"]

STEPS = 2000


def explorer_settings(optimizer: str = "adam", lr: float | None = None, strength: float = 1e-4) -> dict:
    """simulate_weight keywords for `optimizer` with L2 and, separately, with the paper's WD
    (theta *= 1 - lambda after each step), both at strength lambda: label -> keywords."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is unknown; allowed: {', '.join(OPTIMIZERS)}")
    return l2_and_wd_settings(optimizer, strength, DEFAULT_LR[optimizer] if lr is None else lr)


def explorer_figure(optimizer: str = "adam", lr: float | None = None, strength: float = 1e-4,
                    grad_every: int = 0, grad_value: float = -1e-2, steps: int = STEPS):
    """The explorer's picture: theta over `steps` steps for L2 vs WD with `optimizer`; a task
    gradient `grad_value` arrives every `grad_every` steps (0: never). Returns the Figure."""
    lr = DEFAULT_LR[optimizer] if lr is None and optimizer in DEFAULT_LR else lr
    scenario = ("zero task gradient" if grad_every == 0
                else f"task gradient {grad_value:g} every {grad_every} steps")
    frame = trajectory_frame(explorer_settings(optimizer, lr, strength),
                             {scenario: dict(grad_every=grad_every, grad_value=grad_value)}, steps=steps)
    title = f"{OPTIMIZER_NAMES[optimizer]}, lr {format_strength(lr)}: L2 vs weight decay"
    return figures.weight_trajectories(frame, title=title, lr=lr if optimizer != "sgd" else None)


def weight_explorer(steps: int = STEPS):
    """ipywidgets controls (optimizer, log lr, log lambda, gradient frequency) redrawing
    `explorer_figure`. Returns the widget box, or None (with a note) when ipywidgets is missing."""
    try:
        import ipywidgets as w
    except ImportError:
        print("ipywidgets is not installed: `pip install ipywidgets` for the interactive explorer; "
              "the static figure above shows the same comparison.")
        return None
    from IPython.display import display

    controls = {
        "optimizer": w.Dropdown(options=[(OPTIMIZER_NAMES[o], o) for o in OPTIMIZERS], value="adam",
                                description="optimizer"),
        "lr": w.FloatLogSlider(value=1e-3, base=10, min=-5, max=0, step=0.25, description="lr",
                               readout_format=".0e"),
        "strength": w.FloatLogSlider(value=1e-4, base=10, min=-6, max=-2, step=0.25, description="λ",
                                     readout_format=".0e"),
        "grad_every": w.IntSlider(value=0, min=0, max=500, step=25, description="grad every",
                                  tooltip="a task gradient every N steps (0: never)"),
        "grad_value": w.FloatSlider(value=-1e-2, min=-0.1, max=0.1, step=1e-3, description="grad value",
                                    readout_format=".3f"),
    }
    output = w.Output()

    def redraw(**values):
        with output:
            output.clear_output(wait=True)
            figure = explorer_figure(steps=steps, **values)
            display(figure)
            plt.close(figure)

    # Picking an optimizer resets lr to its paper default, the value the text discusses.
    controls["optimizer"].observe(lambda change: setattr(controls["lr"], "value", DEFAULT_LR[change["new"]]),
                                  names="value")
    w.interactive_output(redraw, controls)
    return w.VBox([w.HBox([controls["optimizer"], controls["lr"], controls["strength"]]),
                   w.HBox([controls["grad_every"], controls["grad_value"]]), output])
