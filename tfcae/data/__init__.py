"""The data stage: tf.data pipelines of training and validation images, TFRecord shards."""
