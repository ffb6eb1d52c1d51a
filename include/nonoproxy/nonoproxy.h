/* nonoproxy — umbrella header. */
#ifndef NONOPROXY_H
#define NONOPROXY_H

#include "audit.h"
#include "config.h"
#include "error.h"
#include "export.h"
#include "proxy.h"
#include "version.h"

#endif /* NONOPROXY_H */
