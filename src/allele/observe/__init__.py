"""allele.observe"""
