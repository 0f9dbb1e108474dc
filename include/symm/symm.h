#pragma once
// Everything of symm in one include.
#include "symm/group/named.h"
#include "symm/group/representation.h"
#include "symm/linalg/hom_basis.h"
#include "symm/nn/linear.h"
