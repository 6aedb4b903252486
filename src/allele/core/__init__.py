"""The Allele domain: genomes, the evolution engine, the Kraken reservoir and LLM agents."""
