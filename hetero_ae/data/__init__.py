"""Data: image reading and folder layouts."""

from .images import ImageSet, list_images, load_image, read_normal_folder, to_batch
from .layouts import read_labelled_folder

__all__ = ["ImageSet", "list_images", "load_image", "read_normal_folder", "read_labelled_folder", "to_batch"]
