"""``python -m jobrelay``: the command line."""

from jobrelay._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
