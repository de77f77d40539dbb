/* token: creates a job token file for PST_JOB_TOKEN_FILE / --token-file. */
#include "token.h"

#include <stdio.h>
#include <string.h>

#include "security.h"

int pst_cmd_token(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "new") != 0) {
        fprintf(stderr, "usage: pstrain token new FILE\n"
                        "  writes a new random job token (64 hex digits) to FILE with mode 0600;\n"
                        "  give it to every task with PST_JOB_TOKEN_FILE=FILE (or --token-file)\n");
        return 2;
    }
    pst_status st = {0};
    if (pst_security_token_new(argv[2], &st) < 0) {
        fprintf(stderr, "pstrain token new: %s\n", st.msg);
        return 1;
    }
    return 0;
}
