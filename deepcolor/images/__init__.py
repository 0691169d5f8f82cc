"""Image files: reading and writing pixels with what a colorized copy keeps (bit depth, alpha, ICC, EXIF).

One concept per module; import from them directly:

- `deepcolor.images.picture`: `Picture`, `ImageError`, `MAX_PIXELS` (no Pillow, no OpenCV).
- `deepcolor.images.formats`: suffixes read and written, `OUTPUT_FORMATS`, `sniff_format`,
  `find_images` (no Pillow, no OpenCV).
- `deepcolor.images.read`: `read_picture`, `read_image`, `read_rgb_u8`.
- `deepcolor.images.write`: `write_picture`, `write_image`, `encode_image`.
- `deepcolor.images.png`: `encode_png`, PNG deflated in row segments on every core.
- `deepcolor.images.metadata`: EXIF orientation and tags; `deepcolor.images.tiff`: the TIFF
  reader and writer; `deepcolor.images.diagnose`: what is wrong with a damaged file.

File plumbing that is not about images (atomic writes, paths shown on one line) is in
`deepcolor.files`; the conversion of pixels to floats in `deepcolor.color`.
"""
