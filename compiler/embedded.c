/* embedded.c: lookup in the files scripts/embed.sh compiled in. */
#include "embedded.h"

#include <string.h>

const EmbeddedFile *embedded_file(const char *name)
{
    for (int i = 0; i < kanc_n_embedded_files; i++)
        if (!strcmp(kanc_embedded_files[i].name, name)) return &kanc_embedded_files[i];
    return NULL;
}
