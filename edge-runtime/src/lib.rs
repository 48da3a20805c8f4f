//! Integer-only interpreter for GHNQ blobs (work in progress: see issue "The spine").
#![no_std]
#![forbid(unsafe_code)]
