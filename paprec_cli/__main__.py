"""`python -m paprec_cli` (also what `torchrun -m paprec_cli` runs)."""

from paprec_cli.cli import main

if __name__ == "__main__":
    main()
