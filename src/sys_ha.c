/*
 * sys_ha.c - the HA endpoints: sys/leader's body, sys/ha-status and
 * sys/step-down (VAULT_API: Vault's shapes), from ha.c's view.
 */
#include "sys_ha.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ha.h"
#include "policy.h"
#include "storage.h"
#include "util.h"

/* Vault's zero time, for "no active node known". */
#define ZERO_TIME "0001-01-01T00:00:00Z"
/* How long a node that stepped down stays out of the contest. */
#define STEP_DOWN_HOLDOFF_MS 10000

static void add_time(cJSON *o, const char *key, double unix_seconds)
{
    char when[64];
    struct timespec ts;

    if (unix_seconds <= 0) {
        cJSON_AddStringToObject(o, key, ZERO_TIME);
        return;
    }
    ts.tv_sec = (time_t)unix_seconds;
    ts.tv_nsec = 0;
    time_format_rfc3339(ts, when, sizeof(when));
    cJSON_AddStringToObject(o, key, when);
}

cJSON *sys_ha_leader_json(void)
{
    struct ha_status st;
    cJSON *o = cJSON_CreateObject();

    ha_get_status(&st);
    cJSON_AddBoolToObject(o, "ha_enabled", st.enabled);
    cJSON_AddBoolToObject(o, "is_self", st.is_self);
    add_time(o, "active_time", st.is_self ? st.active_since_unix : 0);
    cJSON_AddStringToObject(o, "leader_address",
                            st.leader_known ? st.leader_address : "");
    cJSON_AddStringToObject(o, "leader_cluster_address",
                            st.leader_known ? st.leader_cluster_address : "");
    cJSON_AddBoolToObject(o, "performance_standby", false);
    cJSON_AddNumberToObject(o, "performance_standby_last_remote_wal", 0);
    return o;
}

bool sys_ha_is_standby(void)
{
    return ha_enabled() && !ha_is_active();
}

int sys_ha_leader_address(char *out, size_t n)
{
    struct ha_status st;

    ha_get_status(&st);
    /* Not while this node holds the lock and is still taking over: it
     * would send requests to itself. */
    if (!st.enabled || !st.leader_known || st.is_self ||
        strcmp(st.leader_node_id, st.node_id) == 0 ||
        st.leader_address[0] == '\0')
        return COFFER_ENOTFOUND;
    if (strlen(st.leader_address) >= n)
        return COFFER_ETOOBIG;
    memcpy(out, st.leader_address, strlen(st.leader_address) + 1);
    return 0;
}

/* One sys/ha-status entry; Vault's last_echo is null for the active. */
static cJSON *node_json(const struct storage_ha_node *n)
{
    cJSON *node = cJSON_CreateObject();

    cJSON_AddStringToObject(node, "hostname", n->hostname);
    cJSON_AddStringToObject(node, "api_address", n->api_addr);
    cJSON_AddStringToObject(node, "cluster_address", n->cluster_addr);
    cJSON_AddBoolToObject(node, "active_node", n->active);
    if (n->active)
        cJSON_AddNullToObject(node, "last_echo");
    else
        add_time(node, "last_echo", n->last_echo_unix);
    cJSON_AddStringToObject(node, "version", n->version);
    cJSON_AddStringToObject(node, "node_id", n->node_id);
    return node;
}

/*
 * sys/ha-status: every node that registered in the storage recently,
 * the active first. Without HA, an empty list.
 */
static void handle_ha_status(struct request *req, struct response *resp)
{
    struct storage_ha_node *list = NULL;
    size_t n = 0;
    cJSON *nodes;
    int rc;

    if (req->op != OP_READ) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    rc = ha_enabled() ? ha_list_nodes(&list, &n) : 0;
    if (rc != 0) {
        response_multierror(resp, 500, "could not read the HA nodes from "
                                       "storage");
        return;
    }
    nodes = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(nodes, node_json(&list[i]));
    free(list);
    resp->data = cJSON_CreateObject();
    cJSON_AddItemToObject(resp->data, "nodes", nodes);
}

/* sys/step-down (PUT, sudo): 204; another node takes over. */
static void handle_step_down(struct request *req, struct response *resp)
{
    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    if (!policy_has_sudo(req->token, req->path)) {
        response_multierror(resp, 403, "permission denied");
        return;
    }
    /* Without HA, or already standing by, there is nothing to give up. */
    if (ha_enabled())
        (void)ha_step_down(STEP_DOWN_HOLDOFF_MS);
    resp->status = 204;
}

bool sys_ha_handles(const char *rel)
{
    return strcmp(rel, "ha-status") == 0 || strcmp(rel, "step-down") == 0;
}

void sys_ha_handle(struct request *req, const char *rel,
                   struct response *resp)
{
    if (strcmp(rel, "ha-status") == 0)
        handle_ha_status(req, resp);
    else
        handle_step_down(req, resp);
}
