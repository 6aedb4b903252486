"""allele.analytics"""
