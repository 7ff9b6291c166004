"""The file layer: atomic files and image loading, the .tfcae file format, bounded range
decoding, the zoo's folder of model cards."""
