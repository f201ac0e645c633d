#include "backstop_shims.h"

CURLcode backstop_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
CURLcode backstop_curl_set_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
CURLcode backstop_curl_set_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
CURLcode backstop_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
CURLcode backstop_curl_set_data_callback(CURL *h, CURLoption o, backstop_curl_data_cb cb) { return curl_easy_setopt(h, o, cb); }
CURLcode backstop_curl_get_response_code(CURL *h, long *code) { return curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code); }
