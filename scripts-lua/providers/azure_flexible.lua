-- Azure Database for PostgreSQL flexible server: on-demand backups through the az CLI.
-- Environment vars used: azure_resource_group, azure_server (both required).
-- A restore is a point-in-time restore into a NEW server at the backup's completion time.

local function where(ctx)
  local rg = ctx.vars and ctx.vars.azure_resource_group
  local server = ctx.vars and ctx.vars.azure_server
  if not rg or not server then error("azure_flexible: set vars.azure_resource_group and vars.azure_server on environment `" .. tostring(ctx.env) .. "`") end
  return rg, server
end

local function az(args)
  local cmd = { "az", "postgres", "flexible-server" }
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  cmd[#cmd + 1] = "--output"
  cmd[#cmd + 1] = "json"
  local r = dbflow.exec(cmd)
  if r.code ~= 0 then error("az postgres flexible-server " .. args[1] .. " failed (exit " .. r.code .. "): " .. (r.stderr or "")) end
  if r.stdout:match("^%s*$") then return {} end
  local ok, doc = pcall(dbflow.json.decode, r.stdout)
  if not ok then error("az postgres flexible-server " .. args[1] .. " returned malformed JSON: " .. tostring(doc)) end
  return doc
end

return {
  manual = {
    snapshot = "az postgres flexible-server backup create --resource-group $RG --name $SERVER --backup-name $BACKUP",
    wait = "az postgres flexible-server backup show --resource-group $RG --name $SERVER --backup-name $BACKUP",
    list = "az postgres flexible-server backup list --resource-group $RG --name $SERVER",
    restore = "az postgres flexible-server restore --resource-group $RG --name $NEW_SERVER --source-server $SERVER --restore-time $COMPLETED_TIME",
    delete = "az postgres flexible-server backup delete --resource-group $RG --name $SERVER --backup-name $BACKUP --yes",
  },

  snapshot = function(ctx, opts)
    local rg, server = where(ctx)
    local name = opts.name or ("dbflow-" .. tostring(ctx.env) .. "-" .. os.date("!%Y%m%d%H%M%S"))
    local doc = az({ "backup", "create", "--resource-group", rg, "--name", server, "--backup-name", name })
    return doc.name or name
  end,

  wait = function(ctx, id)
    local rg, server = where(ctx)
    for _ = 1, 360 do
      local b = az({ "backup", "show", "--resource-group", rg, "--name", server, "--backup-name", id })
      if b.completedTime then return id end
      dbflow.sleep(10)
    end
    error("backup " .. id .. " not completed after an hour")
  end,

  list = function(ctx)
    local rg, server = where(ctx)
    local out = {}
    for _, b in ipairs(az({ "backup", "list", "--resource-group", rg, "--name", server })) do
      out[#out + 1] = { id = b.name, created_at = b.completedTime, kind = b.backupType }
    end
    return out
  end,

  restore = function(ctx, id, opts)
    local rg, server = where(ctx)
    local b = az({ "backup", "show", "--resource-group", rg, "--name", server, "--backup-name", id })
    if not b.completedTime then error("backup " .. id .. " has no completedTime yet") end
    local target = opts.target or (server .. "-restore-" .. os.date("!%Y%m%d%H%M%S"))
    local doc = az({ "restore", "--resource-group", rg, "--name", target, "--source-server", server, "--restore-time", b.completedTime })
    return { server = doc.name or target, state = doc.state }
  end,

  delete = function(ctx, id)
    local rg, server = where(ctx)
    az({ "backup", "delete", "--resource-group", rg, "--name", server, "--backup-name", id, "--yes" })
    return { id = id }
  end,
}
