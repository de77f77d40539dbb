/* Keeps the proto library non-empty before any .proto exists. */
typedef int pst__proto_empty;
