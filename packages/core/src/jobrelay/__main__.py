"""``python -m jobrelay``: the command line."""

from jobrelay._cli import command

if __name__ == "__main__":
    command()
