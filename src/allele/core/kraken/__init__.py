from allele.core.kraken.model import Backend, KrakenLNN, SequenceResult, reservoir_states_reference

__all__ = ["Backend", "KrakenLNN", "SequenceResult", "reservoir_states_reference"]
