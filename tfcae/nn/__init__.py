"""Neural-network building blocks shared by the architectures: GDN, quantizers."""
