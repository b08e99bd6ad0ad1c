"""``python -m netdiffusion``: the same as the ``netdiffusion`` command."""

from netdiffusion.cli import main

if __name__ == "__main__":
    main(prog_name="netdiffusion")
