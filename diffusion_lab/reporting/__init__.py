"""Sweep reports: collect job directories (``collect``), tabulate (``tables``) and plot (``plots``).

Used by ``task=report`` (``diffusion_lab.tasks.report``).
"""
