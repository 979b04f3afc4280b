"""``python -m diffusion_lab [overrides]`` (and the ``diffusion-lab`` console script)."""

from diffusion_lab.app import main

if __name__ == "__main__":
    main()
