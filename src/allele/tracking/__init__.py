"""allele.tracking"""
