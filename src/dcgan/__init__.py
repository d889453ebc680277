"""dcgan: train deep convolutional GANs (Radford, Metz & Chintala 2015) and generate from them."""

__version__ = "0.1.0"
