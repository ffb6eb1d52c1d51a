/* nonoproxy_version (L0). */
#include <nonoproxy/version.h>

const char *
nonoproxy_version(void)
{
    return NONOPROXY_VERSION_STRING;
}
