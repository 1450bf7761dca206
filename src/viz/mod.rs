//! Raster images of value grids (`image`): a grid mapped through a colour map, pixel for pixel,
//! as `mel --png` writes them. Figures with axes, labels and legends are in [`crate::plot`].

pub mod image;
