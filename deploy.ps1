<#
.SYNOPSIS
    Deploy Vechnost on Windows: one command from a fresh clone.

.DESCRIPTION
    .\deploy.ps1                         venv + install + start the bot in the background; it
                                         auto-starts a local Redis (or falls back to memory)
    .\deploy.ps1 -Mode redis             Redis in a Docker Compose container (profile
                                         redis-external), the bot on this host pointed at it
    .\deploy.ps1 -Command status [-Json] what the running bot is doing (vechnost status);
                                         with -Json stdout is JSON only
    .\deploy.ps1 -Command doctor         check configuration, Redis and Telegram
    .\deploy.ps1 -Command logs [-Follow] [-Lines N]
    .\deploy.ps1 -Command stop           Stop-Process by pid, bounded wait
    .\deploy.ps1 -Command restart [-Mode auto|redis]
                                         checks the configuration first; keeps the settings
                                         the bot was started with (run\env) unless set now
    .\deploy.ps1 -Foreground             run in this window instead (Ctrl-C stops it)

    Exit codes: 0 done; 1 failed; 2 configuration (no token, a bad setting); status:
    0 healthy, 1 degraded, 3 not running.

    Scripts blocked ("running scripts is disabled on this system")? Run it once with
        powershell -ExecutionPolicy Bypass -File .\deploy.ps1
    or allow local scripts for your user:
        Set-ExecutionPolicy -Scope CurrentUser RemoteSigned

    Environment: TELEGRAM_BOT_TOKEN (required; or in .env), PYTHON (default: the py
    launcher, else python), VECHNOST_RUN_DIR (default .\run), VECHNOST_READY_TIMEOUT
    (s, default 60), VECHNOST_STOP_TIMEOUT (s, default 30), REDIS_PASSWORD and
    REDIS_PORT (redis mode), plus every setting the bot reads (HEALTH_PORT, LOG_FILE, ...).
#>
[CmdletBinding()]
param(
    [ValidateSet('auto', 'redis')]
    [string]$Mode = 'auto',

    [ValidateSet('deploy', 'status', 'doctor', 'logs', 'stop', 'restart', 'help')]
    [string]$Command = 'deploy',

    [switch]$Foreground,

    [switch]$Follow,

    [int]$Lines = 50,

    [switch]$Json
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$Root = $PSScriptRoot
Set-Location -LiteralPath $Root

$Venv = Join-Path $Root '.venv'
$VenvPython = Join-Path $Root '.venv\Scripts\python.exe'
$VenvVechnost = Join-Path $Root '.venv\Scripts\vechnost.exe'
$RunDir = if ($env:VECHNOST_RUN_DIR) { $env:VECHNOST_RUN_DIR } else { Join-Path $Root 'run' }
$PidFile = Join-Path $RunDir 'vechnost.pid'
$StateFile = Join-Path $RunDir 'state'
$EnvFile = Join-Path $RunDir 'env'
$OutFile = Join-Path $RunDir 'vechnost.out'
$ErrFile = Join-Path $RunDir 'vechnost.err'
$ReadyTimeout = if ($env:VECHNOST_READY_TIMEOUT) { [int]$env:VECHNOST_READY_TIMEOUT } else { 60 }
$StopTimeout = if ($env:VECHNOST_STOP_TIMEOUT) { [int]$env:VECHNOST_STOP_TIMEOUT } else { 30 }

# Our own lines; with -Json they go to stderr, so that stdout is nothing but JSON.
function Write-Step([string]$Message) {
    if ($Json) { [Console]::Error.WriteLine("==> $Message") } else { Write-Host "==> $Message" }
}

# Windows PowerShell 5.1 turns a native command's redirected stderr into error records,
# which $ErrorActionPreference = 'Stop' throws on. Native commands whose stderr is
# redirected run through these two, with 'Continue' in their own scope.
function Invoke-NativeQuiet([string]$Exe, [string[]]$Arguments) {
    $ErrorActionPreference = 'Continue'
    try {
        & $Exe @Arguments *> $null
        return $LASTEXITCODE
    }
    catch {
        return 1
    }
}

function Get-NativeOutput([string]$Exe, [string[]]$Arguments) {
    $ErrorActionPreference = 'Continue'
    try {
        return (& $Exe @Arguments 2>&1 | ForEach-Object { "$_" })
    }
    catch {
        return "$_"
    }
}

function Stop-WithError([string]$Message, [int]$Code = 1) {
    [Console]::Error.WriteLine("deploy.ps1: $Message")
    exit $Code
}

# --- checks -------------------------------------------------------------------

# The Python used to create the venv: $env:PYTHON, else the py launcher (-3), else python.
function Get-BasePython {
    if ($env:PYTHON) {
        return @{ Exe = $env:PYTHON; Args = @() }
    }
    if (Get-Command 'py' -ErrorAction SilentlyContinue) {
        return @{ Exe = 'py'; Args = @('-3') }
    }
    return @{ Exe = 'python'; Args = @() }
}

function Test-PythonVersion([string]$Exe, [string[]]$PrefixArgs) {
    $code = Invoke-NativeQuiet $Exe (@($PrefixArgs) + @('-c', 'import sys; sys.exit(sys.version_info < (3, 11))'))
    return ($code -eq 0)
}

function Assert-Python {
    $python = Get-BasePython
    if (-not (Get-Command $python.Exe -ErrorAction SilentlyContinue)) {
        Stop-WithError ("Python 3.11 or newer is needed, and '$($python.Exe)' was not found. " +
            'Install it from https://www.python.org/downloads/ (tick "Add to PATH") or set $env:PYTHON.')
    }
    if (-not (Test-PythonVersion $python.Exe $python.Args)) {
        $version = Get-NativeOutput $python.Exe (@($python.Args) + @('-V'))
        Stop-WithError ("Python 3.11 or newer is needed; $($python.Exe) is $version. " +
            'Install Python 3.11+ or set $env:PYTHON to its python.exe.')
    }
    if ((Test-Path -LiteralPath $VenvPython) -and -not (Test-PythonVersion $VenvPython @())) {
        Stop-WithError "$Venv was made with an older Python; remove the .venv folder and run .\deploy.ps1 again."
    }
    return $python
}

function Test-Token {
    if ($env:TELEGRAM_BOT_TOKEN -and $env:TELEGRAM_BOT_TOKEN.Trim()) {
        return $true
    }
    $dotenv = Join-Path $Root '.env'
    if (-not (Test-Path -LiteralPath $dotenv)) {
        return $false
    }
    $pattern = '^\s*(export\s+)?TELEGRAM_BOT_TOKEN\s*=\s*[''"]?[^''"\s#]'
    return [bool](Select-String -LiteralPath $dotenv -Pattern $pattern -Quiet)
}

function Assert-Token {
    if (-not (Test-Token) -and -not $env:TELEGRAM_BOT_TOKEN_FILE) {
        Stop-WithError -Code 2 ("TELEGRAM_BOT_TOKEN is not set. Get a token from @BotFather in Telegram, then either`n" +
            "    `$env:TELEGRAM_BOT_TOKEN = '123456:ABC...'`n" +
            "or put the line  TELEGRAM_BOT_TOKEN=123456:ABC...  in $Root\.env (copy .env.example .env), and run .\deploy.ps1 again.")
    }
}

# --- python helpers -------------------------------------------------------------

# Runs a Python snippet with the venv's python (from a file: no quoting trouble).
function Invoke-VenvPython([string]$Code, [string[]]$Arguments = @()) {
    New-Item -ItemType Directory -Force -Path $RunDir | Out-Null
    $script = Join-Path $RunDir 'helper.py'
    Set-Content -LiteralPath $script -Value $Code -Encoding UTF8
    & $VenvPython $script @Arguments | Out-Host
    return $LASTEXITCODE
}

$InstallCheck = @'
import sys, tomllib
from importlib import metadata
import vechnost_bot
project = tomllib.load(open('pyproject.toml', 'rb'))['project']
installed = metadata.distribution(project['name'])
if installed.version != project['version']:
    sys.exit(1)
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
def key(text):
    req = Requirement(text)
    return (req.name.lower().replace('_', '-'), str(req.specifier), tuple(sorted(req.extras)))
wanted = {key(d) for d in project.get('dependencies', [])}
have = {key(d.split(';')[0]) for d in (installed.requires or []) if 'extra ==' not in d}
if wanted != have:
    sys.exit(1)
for name, *_ in wanted:
    metadata.distribution(name)
'@

$SettingsProbe = @'
import sys
from vechnost_bot.config import load_settings
from vechnost_bot.errors import VechnostError
from vechnost_bot.ops.logs import log_path
from vechnost_bot.ops.status import status_url
try:
    settings = load_settings()
except VechnostError as error:
    print(f'deploy.ps1: {error}', file=sys.stderr)
    sys.exit(2)
print(status_url(settings).removesuffix('/status'))
print(log_path(settings))
'@

$PortProbe = @'
import socket, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
try:
    socket.create_connection((url.hostname, url.port), timeout=1).close()
except OSError:
    sys.exit(0)
sys.exit(1)
'@

# --- install ------------------------------------------------------------------

function Test-InstallNeeded {
    if (-not (Test-Path -LiteralPath $VenvPython)) { return $true }
    # .installed is scripts/check's marker (dev extras: a superset), .deploy-installed ours.
    foreach ($name in @('.deploy-installed', '.installed')) {
        $marker = Join-Path $Venv $name
        if ((Test-Path -LiteralPath $marker) -and
            ((Get-Item -LiteralPath 'pyproject.toml').LastWriteTime -le (Get-Item -LiteralPath $marker).LastWriteTime)) {
            return ((Invoke-NativeQuiet $VenvPython @('-c', 'import vechnost_bot')) -ne 0)
        }
    }
    $code = Invoke-VenvPython $InstallCheck
    return ($code -ne 0)
}

function Install-Vechnost($Python) {
    if (-not (Test-Path -LiteralPath $VenvPython)) {
        Write-Step "creating $Venv"
        & $Python.Exe @($Python.Args) -m venv $Venv
        if ($LASTEXITCODE -ne 0) { Stop-WithError "could not create $Venv (see above)." }
    }
    # A venv made halfway has no pip: make it again.
    if ((Invoke-NativeQuiet $VenvPython @('-m', 'pip', '--version')) -ne 0) {
        Write-Step "repairing $Venv (it has no pip)"
        & $Python.Exe @($Python.Args) -m venv --clear $Venv
        if ($LASTEXITCODE -ne 0 -or (Invoke-NativeQuiet $VenvPython @('-m', 'pip', '--version')) -ne 0) {
            Stop-WithError "could not repair $Venv (no pip in it); remove the .venv folder and run .\deploy.ps1 again."
        }
        Remove-Item -LiteralPath (Join-Path $Venv '.deploy-installed') -Force -ErrorAction SilentlyContinue
    }
    if (-not (Test-InstallNeeded)) { return }
    Write-Step "installing Vechnost into $Venv (pip install -e .)"
    & $VenvPython -m pip install --quiet --upgrade pip
    & $VenvPython -m pip install --quiet -e .
    if ($LASTEXITCODE -ne 0) {
        Stop-WithError 'pip install failed (see above). Check your network, then run .\deploy.ps1 again.'
    }
    New-Item -ItemType File -Force -Path (Join-Path $Venv '.deploy-installed') | Out-Null
}

# --- state --------------------------------------------------------------------

function Save-State([string]$DeployMode, [string]$LogFile) {
    New-Item -ItemType Directory -Force -Path $RunDir | Out-Null
    @(
        "MODE=$DeployMode",
        "HEALTH_HOST=$env:HEALTH_HOST",
        "HEALTH_PORT=$env:HEALTH_PORT",
        "LOG_FILE=$LogFile"
    ) | Set-Content -LiteralPath $StateFile -Encoding UTF8
}

# Restores what the last deploy used (health address, log file) unless set now; returns its mode.
function Import-State {
    $savedMode = $null
    if (-not (Test-Path -LiteralPath $StateFile)) { return $savedMode }
    foreach ($line in Get-Content -LiteralPath $StateFile) {
        $key, $value = $line -split '=', 2
        if ($key -eq 'MODE') {
            $savedMode = $value
        }
        elseif ($value -and -not [Environment]::GetEnvironmentVariable($key)) {
            [Environment]::SetEnvironmentVariable($key, $value)
        }
    }
    return $savedMode
}

$SettingPattern = '^(TELEGRAM_|REDIS_|HEALTH_|LOG_|RATE_LIMIT_|PYTHON$)'
# The settings the operator gave (this session's, or restored by Import-Environment), not
# the ones this script derives per mode (REDIS_URL in redis mode, REDIS_AUTO_START, LOG_FILE).
$script:OperatorSettings = @(Get-ChildItem Env: | Where-Object { $_.Name -match $SettingPattern } | ForEach-Object { $_.Name })

# The bot's settings from this session, so that a restart from another window starts the
# same bot (the file may hold the token: readable by this user only).
function Save-Environment {
    $saved = @{}
    foreach ($name in $script:OperatorSettings) {
        $value = [Environment]::GetEnvironmentVariable($name)
        if ($null -ne $value) { $saved[$name] = $value }
    }
    $saved | ConvertTo-Json | Set-Content -LiteralPath $EnvFile -Encoding UTF8
    try {
        $acl = Get-Acl -LiteralPath $EnvFile
        $acl.SetAccessRuleProtection($true, $false)
        $user = [System.Security.Principal.WindowsIdentity]::GetCurrent().Name
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($user, 'FullControl', 'Allow')
        $acl.AddAccessRule($rule)
        Set-Acl -LiteralPath $EnvFile -AclObject $acl
    }
    catch {
        Write-Warning "could not restrict $EnvFile to this user: $_"
    }
}

# Restore the saved settings that this session does not set.
function Import-Environment {
    if (-not (Test-Path -LiteralPath $EnvFile)) { return }
    $saved = Get-Content -LiteralPath $EnvFile -Raw | ConvertFrom-Json
    foreach ($property in $saved.PSObject.Properties) {
        if ($property.Name -match $SettingPattern -and
            $null -eq [Environment]::GetEnvironmentVariable($property.Name)) {
            [Environment]::SetEnvironmentVariable($property.Name, [string]$property.Value)
            $script:OperatorSettings += $property.Name
        }
    }
}

function Get-StartStamp([System.Diagnostics.Process]$Process) {
    return $Process.StartTime.ToUniversalTime().ToString('o')
}

# The pid from the pid file when that very process still runs: the start time recorded
# with it and this checkout's `python -m vechnost_bot run`. A reused pid, or any other
# program, is never ours and is never stopped.
function Get-RunningPid {
    if (-not (Test-Path -LiteralPath $PidFile)) { return $null }
    $lines = @(Get-Content -LiteralPath $PidFile)
    $botPid = 0
    if ($lines.Count -lt 1 -or -not [int]::TryParse($lines[0].Trim(), [ref]$botPid)) { return $null }
    $process = Get-Process -Id $botPid -ErrorAction SilentlyContinue
    if (-not $process) { return $null }
    try {
        if ($lines.Count -ge 2 -and $lines[1].Trim() -and (Get-StartStamp $process) -ne $lines[1].Trim()) {
            return $null
        }
    }
    catch {
        return $null
    }
    try {
        $info = Get-CimInstance Win32_Process -Filter "ProcessId = $botPid" -ErrorAction Stop
        $line = [string]$info.CommandLine
        if (-not $line.Contains($VenvPython) -or -not $line.Contains('vechnost_bot run')) { return $null }
    }
    catch {
        if ($process.Path -ne $VenvPython) { return $null }
    }
    return $botPid
}

function Save-Pid([System.Diagnostics.Process]$Process) {
    @("$($Process.Id)", (Get-StartStamp $Process)) | Set-Content -LiteralPath $PidFile -Encoding ASCII
}

function Assert-NotRunning {
    $botPid = Get-RunningPid
    if ($botPid) {
        Stop-WithError "a Vechnost bot already runs (pid $botPid, pid file $PidFile). Use -Command status, -Command restart or -Command stop."
    }
    if (Test-Path -LiteralPath $PidFile) {
        Write-Warning "removing stale pid file $PidFile (its process is gone, or is not this bot)"
        Remove-Item -LiteralPath $PidFile -Force
    }
}

# --- start --------------------------------------------------------------------

# This start's errors first (the .err/.out files are new each start), then the part of the
# log file written since this start ($Offset: its size before): never an older run's lines.
function Show-FailureLogs([long]$Offset) {
    foreach ($file in @($ErrFile, $OutFile)) {
        if ((Test-Path -LiteralPath $file) -and (Get-Item -LiteralPath $file).Length -gt 0) {
            [Console]::Error.WriteLine("`n--- errors of this start ($file) ---")
            Get-Content -LiteralPath $file -Tail 20 | ForEach-Object { [Console]::Error.WriteLine($_) }
        }
    }
    if ($env:LOG_FILE -and (Test-Path -LiteralPath $env:LOG_FILE)) {
        $stream = [System.IO.File]::Open($env:LOG_FILE, 'Open', 'Read', 'ReadWrite')
        try {
            [void]$stream.Seek([Math]::Min($Offset, $stream.Length), 'Begin')
            $text = (New-Object System.IO.StreamReader($stream)).ReadToEnd()
        }
        finally {
            $stream.Dispose()
        }
        [Console]::Error.WriteLine("`n--- last lines of $env:LOG_FILE from this start ---")
        $text -split "`r?`n" | Select-Object -Last 40 | ForEach-Object { [Console]::Error.WriteLine($_) }
    }
}

function Get-FileSize([string]$Path) {
    if ($Path -and (Test-Path -LiteralPath $Path)) { return (Get-Item -LiteralPath $Path).Length }
    return 0
}

function Wait-Ready([string]$HealthUrl, [int]$BotPid) {
    $deadline = (Get-Date).AddSeconds($ReadyTimeout)
    while ((Get-Date) -lt $deadline) {
        if (-not (Get-Process -Id $BotPid -ErrorAction SilentlyContinue)) { return 'exited' }
        try {
            $response = Invoke-WebRequest -Uri "$HealthUrl/readyz" -UseBasicParsing -TimeoutSec 2
            $body = $response.Content | ConvertFrom-Json
            # The bot answers from memory at once while Redis is found or started in the
            # background: report the storage once that has settled.
            $settling = @('initializing', 'running') -contains $body.redis_state
            if ($response.StatusCode -eq 200 -and ($body.storage_mode -eq 'redis' -or -not $settling)) {
                Write-Step "ready: storage $($body.storage_mode), redis $($body.redis_source) ($($body.status))"
                return 'ready'
            }
        }
        catch {
            # not answering yet (or 503 while starting): try again
            $null = $_
        }
        Start-Sleep -Milliseconds 300
    }
    return 'timeout'
}

# The settings as the bot reads them, checked before anything is stopped or started;
# returns the health URL and sets LOG_FILE. Exit 2 on a bad setting.
function Assert-Config {
    Assert-Token
    $probe = @(Invoke-VenvPythonOutput $SettingsProbe)
    if ($LASTEXITCODE -ne 0 -or $probe.Count -lt 2) { exit 2 }
    if (-not $env:LOG_FILE) { $env:LOG_FILE = $probe[1] }
    return $probe[0]
}

function Start-Bot([string]$DeployMode) {
    Assert-NotRunning
    $healthUrl = Assert-Config
    if ((Invoke-VenvPython $PortProbe @($healthUrl)) -ne 0) {
        Stop-WithError ("something already listens on $healthUrl (HEALTH_PORT). Is another Vechnost running? " +
            'Check with -Command status, or set $env:HEALTH_PORT to a free port.')
    }
    New-Item -ItemType Directory -Force -Path $RunDir, (Split-Path -Parent $env:LOG_FILE) | Out-Null
    Save-State $DeployMode $env:LOG_FILE
    Save-Environment
    if ($Foreground) {
        Write-Step "running vechnost in the foreground ($DeployMode mode; Ctrl-C stops it; log file $env:LOG_FILE)"
        # In this console (Ctrl-C reaches it), with the bot's own pid in the pid file.
        $process = Start-Process -FilePath $VenvPython -ArgumentList @('-m', 'vechnost_bot', 'run') `
            -WorkingDirectory $Root -NoNewWindow -PassThru
        Save-Pid $process
        try {
            $process.WaitForExit()
        }
        finally {
            Remove-Item -LiteralPath $PidFile -Force -ErrorAction SilentlyContinue
        }
        exit $process.ExitCode
    }
    $offset = Get-FileSize $env:LOG_FILE
    # The log file has every line (rotated); the console files, new at each start, get
    # errors only (LOG_CONSOLE=false), so they stay small however long the bot runs.
    $env:LOG_CONSOLE = 'false'
    # python.exe itself (not the vechnost.exe launcher), so that the pid is the bot's.
    $process = Start-Process -FilePath $VenvPython -ArgumentList @('-m', 'vechnost_bot', 'run') `
        -WorkingDirectory $Root -WindowStyle Hidden -PassThru `
        -RedirectStandardOutput $OutFile -RedirectStandardError $ErrFile
    Remove-Item Env:LOG_CONSOLE
    Save-Pid $process
    Write-Step "started vechnost (pid $($process.Id), $DeployMode mode); waiting up to ${ReadyTimeout}s for $healthUrl/readyz"
    $result = 'interrupted'
    try {
        $result = Wait-Ready $healthUrl $process.Id
    }
    finally {
        # Ctrl-C stops the wait, not the bot: say so.
        if ($result -eq 'interrupted') {
            [Console]::Error.WriteLine("deploy.ps1: interrupted. vechnost (pid $($process.Id)) keeps running in the background: -Command status shows it, -Command stop stops it.")
        }
    }
    if ($result -ne 'ready') {
        if ($result -eq 'exited') {
            [Console]::Error.WriteLine('deploy.ps1: vechnost exited during startup.')
            Remove-Item -LiteralPath $PidFile -Force -ErrorAction SilentlyContinue
        }
        else {
            [Console]::Error.WriteLine("deploy.ps1: vechnost (pid $($process.Id)) was not ready within ${ReadyTimeout}s; it keeps running. Stop it with -Command stop.")
        }
        Show-FailureLogs $offset
        exit 1
    }
    Write-Step "log file: $env:LOG_FILE  (.\deploy.ps1 -Command logs -Follow)"
    # Degraded (memory mode) is still a successful deploy: status says why.
    & $VenvVechnost status
}

function Invoke-VenvPythonOutput([string]$Code) {
    New-Item -ItemType Directory -Force -Path $RunDir | Out-Null
    $script = Join-Path $RunDir 'helper.py'
    Set-Content -LiteralPath $script -Value $Code -Encoding UTF8
    return (& $VenvPython $script)
}

# Compose v2 only: v1 (docker-compose 1.x) rejects the file's top-level `name:`. The second
# file publishes Redis on this host's loopback for the bot that runs here.
function Invoke-Compose([string[]]$Arguments) {
    $files = @('-f', (Join-Path $Root 'docker-compose.yml'), '-f', (Join-Path $Root 'docker-compose.redis-port.yml'))
    & docker compose @files @Arguments
}

function Assert-Docker {
    if (-not (Get-Command 'docker' -ErrorAction SilentlyContinue)) {
        Stop-WithError ("redis mode needs Docker, and 'docker' was not found. Install Docker Desktop " +
            '(https://docs.docker.com/desktop/install/windows-install/), or use -Mode auto (no Docker needed).')
    }
    if ((Invoke-NativeQuiet 'docker' @('compose', 'version')) -ne 0) {
        Stop-WithError ("redis mode needs Docker Compose v2 ('docker compose'); the old docker-compose 1.x cannot read docker-compose.yml. " +
            'Update Docker Desktop (it ships Compose v2), or use -Mode auto.')
    }
    if ((Invoke-NativeQuiet 'docker' @('info')) -ne 0) {
        Stop-WithError "the Docker engine does not answer ('docker info' failed). Start Docker Desktop and try again."
    }
}

function Get-RedisPassword {
    if ($env:REDIS_PASSWORD) { return $env:REDIS_PASSWORD }
    $file = Join-Path $RunDir 'redis-password'
    if (-not (Test-Path -LiteralPath $file)) {
        New-Item -ItemType Directory -Force -Path $RunDir | Out-Null
        $bytes = New-Object byte[] 24
        [System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($bytes)
        $generated = [Convert]::ToBase64String($bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_')
        Set-Content -LiteralPath $file -Value $generated -Encoding ASCII
        Write-Step "generated a Redis password in $file"
    }
    return (Get-Content -LiteralPath $file -Raw).Trim()
}

function Wait-RedisContainer {
    $deadline = (Get-Date).AddSeconds(60)
    while ((Get-Date) -lt $deadline) {
        $health = Get-NativeOutput 'docker' @('inspect', '-f', '{{if .State.Health}}{{.State.Health.Status}}{{end}}', 'vechnost-redis')
        if ($health -eq 'healthy') { return }
        Start-Sleep -Seconds 1
    }
    Write-Warning 'the vechnost-redis container is not healthy after 60s (docker logs vechnost-redis); the bot starts anyway and switches to Redis when it answers.'
}

# REDIS_PORT, else 6379 when free, else a free port (another Redis often owns 6379).
function Get-RedisHostPort {
    if ($env:REDIS_PORT) { return $env:REDIS_PORT }
    $client = New-Object System.Net.Sockets.TcpClient
    try {
        $client.Connect('127.0.0.1', 6379)
    }
    catch {
        return '6379'
    }
    finally {
        $client.Dispose()
    }
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $listener.Start()
    $port = $listener.LocalEndpoint.Port
    $listener.Stop()
    Write-Step "127.0.0.1:6379 is taken; the Redis container uses 127.0.0.1:$port"
    return "$port"
}

function Invoke-Deploy([string]$DeployMode) {
    $python = Assert-Python
    Assert-Token
    if ($DeployMode -eq 'redis') { Assert-Docker }
    Install-Vechnost $python
    if ($DeployMode -eq 'auto') {
        $env:REDIS_AUTO_START = 'true'
        # REDIS_PASSWORD (also in .env) is the Redis container's, for redis mode; the
        # auto-started server has its own generated password. Set here, it wins over .env
        # (a single space: PowerShell 5.1 deletes a variable set to '').
        $env:REDIS_PASSWORD = ' '
        $env:REDIS_PASSWORD_FILE = ' '
    }
    else {
        Assert-NotRunning
        $null = Assert-Config
        $password = Get-RedisPassword
        $port = Get-RedisHostPort
        $env:REDIS_PASSWORD = $password
        $env:REDIS_PORT = $port
        Write-Step "starting Redis: docker compose --profile redis-external up -d redis (127.0.0.1:$port)"
        # Only the redis service: the bot runs on this host, so a bot container would poll twice.
        Invoke-Compose @('--profile', 'redis-external', 'up', '-d', 'redis')
        if ($LASTEXITCODE -ne 0) { Stop-WithError 'docker compose could not start Redis (see above).' }
        Wait-RedisContainer
        # The bot URL-encodes REDIS_PASSWORD into the URL itself.
        $env:REDIS_URL = "redis://127.0.0.1:$port/0"
        $env:REDIS_AUTO_START = 'false'
    }
    Start-Bot $DeployMode
}

# --- other commands -------------------------------------------------------------

function Assert-Installed {
    if (-not (Test-Path -LiteralPath $VenvVechnost)) {
        Stop-WithError 'Vechnost is not installed here yet; run .\deploy.ps1 first.'
    }
}

function Invoke-Status {
    Assert-Installed
    $savedMode = Import-State
    Import-Environment
    $botPid = Get-RunningPid
    if ($botPid) {
        Write-Step "bot process: pid $botPid ($savedMode mode, pid file $PidFile)"
    }
    else {
        Write-Step "bot process: not running from this folder (no live pid in $PidFile)"
    }
    $statusArgs = @('status')
    if ($Json) { $statusArgs += '--json' }
    & $VenvVechnost @statusArgs
    $code = $LASTEXITCODE
    if ($savedMode -eq 'redis' -and (Get-Command 'docker' -ErrorAction SilentlyContinue)) {
        $ps = Get-NativeOutput 'docker' @('compose', '-f', (Join-Path $Root 'docker-compose.yml'), '--profile', 'redis-external', 'ps', 'redis')
        $ps | ForEach-Object { Write-Step $_ }
    }
    exit $code
}

function Invoke-Doctor {
    Assert-Installed
    $null = Import-State
    Import-Environment
    & $VenvVechnost doctor
    exit $LASTEXITCODE
}

function Invoke-Logs {
    Assert-Installed
    $null = Import-State
    Import-Environment
    $logArgs = @('logs', '-n', "$Lines")
    if ($Follow) { $logArgs += '-f' }
    & $VenvVechnost @logArgs
    exit $LASTEXITCODE
}

function Invoke-Stop {
    $savedMode = Import-State
    $botPid = Get-RunningPid
    if (-not $botPid) {
        Remove-Item -LiteralPath $PidFile -Force -ErrorAction SilentlyContinue
        Write-Step 'vechnost is not running'
        return
    }
    # Windows has no SIGTERM for a windowless process: Stop-Process ends it. An
    # auto-started Redis keeps running and is adopted at the next start; memory-mode
    # writes are in the journal file, which the bot keeps current about once a second.
    Write-Step "stopping vechnost (pid $botPid; waiting up to ${StopTimeout}s)"
    Stop-Process -Id $botPid -ErrorAction SilentlyContinue
    try {
        Wait-Process -Id $botPid -Timeout $StopTimeout -ErrorAction Stop
    }
    catch {
        if (Get-Process -Id $botPid -ErrorAction SilentlyContinue) {
            Write-Warning "pid $botPid did not stop within ${StopTimeout}s; forcing it"
            Stop-Process -Id $botPid -Force -ErrorAction SilentlyContinue
        }
    }
    Remove-Item -LiteralPath $PidFile -Force -ErrorAction SilentlyContinue
    Write-Step 'stopped'
    if ($savedMode -eq 'redis') {
        Write-Step 'the vechnost-redis container keeps running (your data); stop it with: docker compose --profile redis-external stop redis'
    }
}

# --- main -----------------------------------------------------------------------

switch ($Command) {
    'help' {
        Get-Help -Detailed $PSCommandPath
    }
    'deploy' {
        Invoke-Deploy $Mode
    }
    'status' {
        Invoke-Status
    }
    'doctor' {
        Invoke-Doctor
    }
    'logs' {
        Invoke-Logs
    }
    'stop' {
        Invoke-Stop
    }
    'restart' {
        $savedMode = Import-State
        Import-Environment
        $restartMode = if ($PSBoundParameters.ContainsKey('Mode')) { $Mode } elseif ($savedMode) { $savedMode } else { 'auto' }
        # Everything the new start needs is checked before the running bot is stopped.
        $null = Assert-Python
        Assert-Installed
        $null = Assert-Config
        if ($restartMode -eq 'redis') { Assert-Docker }
        Invoke-Stop
        Invoke-Deploy $restartMode
    }
}
