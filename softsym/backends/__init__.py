"""Other places the data can live: objectives that implement the protocol on other array types."""
