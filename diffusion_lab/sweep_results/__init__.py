"""The results of a sweep (or of any runs) for ``task=report``: collect the job directories (``collect``),
tabulate them (``tables``) and plot a metric against each swept key (``plots``).

Used by ``task=report`` (``diffusion_lab.tasks.report``).
"""
