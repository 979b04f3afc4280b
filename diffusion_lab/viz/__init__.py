"""Rendering of generation trajectories, independent of any model.

- ``trajectory.frames_from_trajectory``: sampler trajectory -> ``FrameState`` list (pure data)
- ``render.render_gif`` / ``render.save_frames`` / ``render.render_frame``: Pillow images and GIF
- ``compare.render_comparison``: diffusion (top) vs autoregressive (bottom) GIF
- ``viewer.write_viewer``: self-contained interactive ``viewer.html``
- ``masking_explainer.masking_explainer``: one sentence at each masking rate (image + rich table);
  ``schedule_rates`` picks the rates of a masking schedule
- ``wandb_media``: log the rendered files to W&B (used by ``task=visualize``)

The framework task that wires these to trained runs is ``diffusion_lab.tasks.visualize``.
"""

from diffusion_lab.viz.compare import render_comparison
from diffusion_lab.viz.masking_explainer import masking_explainer
from diffusion_lab.viz.render import render_frame, render_frames, render_gif, save_frames
from diffusion_lab.viz.trajectory import FrameState, frames_from_trajectory
from diffusion_lab.viz.viewer import write_viewer

__all__ = [
    "FrameState",
    "frames_from_trajectory",
    "masking_explainer",
    "render_comparison",
    "render_frame",
    "render_frames",
    "render_gif",
    "save_frames",
    "write_viewer",
]
