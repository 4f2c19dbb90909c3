/*
 * Parboil's common.h as its stencil kernel uses it: the row-major index of element (i, j, k) of an
 * nx * ny * nz grid. Written for ncc, because the thread-coarsening data set ships the stencil
 * kernel without this header.
 */
#ifndef NCC_PARBOIL_COMMON_H
#define NCC_PARBOIL_COMMON_H
#define Index3D(nx, ny, i, j, k) ((i) + (nx) * ((j) + (ny) * (k)))
#endif
