/* Everything of the C ABI in one include. */
#ifndef GRAFT_GRAFT_H
#define GRAFT_GRAFT_H
#include "graft/abi.h"
#include "graft/activation.h"
#include "graft/comm.h"
#include "graft/dataset.h"
#include "graft/host.h"
#include "graft/layer.h"
#include "graft/loss.h"
#include "graft/mesh.h"
#include "graft/optimizer.h"
#include "graft/strategy.h"
#include "graft/tensor.h"
#endif
