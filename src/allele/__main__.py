"""``python -m allele``: the same as the ``allele`` console script."""

from allele.cli import main

main()
