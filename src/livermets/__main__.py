"""`python -m livermets` runs the command line."""

from livermets.cli import main

if __name__ == "__main__":
    main()
