/*
 * NPB 3.3 SP (SNU NPB-OpenCL): the prototype of exact_solution(), which SP's initialize kernels call
 * but do not declare (the suite's program source declares it once for all kernels; see the data set's
 * npb-3.3npb-SP-initialize2.cl). OpenCL C has no implicit declarations, so ncc force-includes this.
 */
#ifndef NCC_NPB_SP_EXACT_SOLUTION_H
#define NCC_NPB_SP_EXACT_SOLUTION_H
void exact_solution(double xi, double eta, double zeta, double dtemp[5], __global double *g_ce);
#endif
