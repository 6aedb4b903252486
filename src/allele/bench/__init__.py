"""allele.bench"""
