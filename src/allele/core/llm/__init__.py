from allele.core.llm.llamacpp import *  # noqa: F403 (the split follows)
from allele.core.llm.llamacpp import _probe_native  # noqa: F401
