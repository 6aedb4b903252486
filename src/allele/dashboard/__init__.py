"""allele.dashboard"""
