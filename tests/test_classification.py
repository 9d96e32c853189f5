"""Classification in depth (issue 3): shell syntax, the command table, SQL, HTTP, Redis,
and the policy's extensions ([[commands]], [[http_rules]], classify rules)."""

import json

import pytest

from drygate.classifiers.shell import classify_command_verdict
from drygate.classifiers.sql import classify_sql_script
from drygate.engine import classify
from drygate.policy.load import compile_policy_text
from drygate.types import ToolCall


def effect(command, policy=None):
    return classify_command_verdict(command, policy).effect


@pytest.mark.parametrize("command,expected", [
    # syntax: the strongest part decides
    ("ls | grep x && cat y; pwd", "read"),
    ("ls && rm x", "write"),
    ("(cd sub && ls)", "read"),
    ("{ ls; } > listing.txt", "write"),
    ("ls 2>&1 >/dev/null", "read"),
    ("echo $(date)", "read"),
    ("echo $(touch x)", "write"),
    ("diff <(ls a) <(ls b)", "read"),
    ("tee >(wc -l) < f", "unknown"),
    ("if test -f x; then cat x; else rm y; fi", "write"),
    ("for f in a b; do cat $f; done", "read"),
    ("while read l; do echo $l; done < f", "read"),
    ("f() { rm -rf /; }; f", "unknown"),
    ("eval 'ls'", "unknown"),
    ("python -c 'print(1)'", "unknown"),
    ("node -e 'require(\"fs\").writeFileSync(\"x\",\"\")'", "unknown"),
    ("echo cm0gLXJmIC8= | base64 -d | sh", "unknown"),
    ("$CMD arg", "unknown"),
    ("ls 'unterminated", "unknown"),
    # wrappers
    ("sudo ls /root", "read"),
    ("sudo -u postgres psql -c 'DROP TABLE t'", "write"),
    ("env LANG=C sort f", "read"),
    ("env LD_PRELOAD=x.so ls", "unknown"),
    ("timeout 5 cat f", "read"),
    ("nice -n 10 rm x", "write"),
    ("nohup curl -X DELETE https://x &", "write"),
    ("xargs cat < list", "read"),
    ("xargs rm < list", "write"),
    ("watch 'kubectl get pods'", "read"),
    ("bash -c 'ls && cat f'", "read"),
    ("sh -c \"bash -c 'rm x'\"", "write"),
    ("find . -name '*.log' -exec cat {} \\;", "read"),
    ("find . -name '*.log' -exec rm {} +", "write"),
    ("docker exec web ls /app", "read"),
    ("kubectl exec pod -- rm -rf /data", "write"),
    ("ssh host 'df -h'", "read"),
    # the table
    ("git log -p --stat", "read"), ("git push --force origin main", "write"), ("git branch", "read"),
    ("git branch -D old", "write"), ("git stash list", "read"), ("git stash", "write"),
    ("kubectl get pods -A", "read"), ("kubectl delete pod x", "write"),
    ("kubectl apply --dry-run=server -f x.yaml", "read"), ("kubectl apply --dry-run=none -f x.yaml", "write"),
    ("helm list -A", "read"), ("helm upgrade web chart", "write"),
    ("terraform plan", "read"), ("terraform plan -out=tf.plan", "write"), ("terraform apply -auto-approve", "write"),
    ("aws s3 ls s3://b", "read"), ("aws s3 cp a s3://b/", "write"), ("aws dynamodb get-item --table-name t", "read"),
    ("aws dynamodb put-item --table-name t --item x", "write"), ("aws ec2 describe-instances", "read"),
    ("gcloud compute instances list", "read"), ("gcloud compute instances delete vm", "write"),
    ("gsutil ls gs://b", "read"), ("gsutil rm gs://b/x", "write"),
    ("az vm list", "read"), ("az vm delete -n x", "write"),
    ("wrangler r2 object get assets/a.png --pipe", "read"), ("wrangler r2 object delete assets/a.png", "write"),
    ("wrangler kv key get --binding=KV k", "read"), ("wrangler kv key put --binding=KV k v", "write"),
    ("gh pr list", "read"), ("gh pr merge 1", "write"), ("gh api repos/o/r/issues", "read"),
    ("gh api -X POST repos/o/r/issues -f title=x", "write"), ("gh api repos/o/r/labels -f name=x", "write"),
    ("docker ps", "read"), ("docker run --rm alpine ls", "unknown"), ("docker compose up -d", "write"),
    ("npm ls", "read"), ("npm install", "write"), ("npm run build", "unknown"),
    ("pip list", "read"), ("pip install x", "write"), ("apt-get install -y x", "write"), ("apt list --installed", "read"),
    ("sed -n '1,5p' f", "read"), ("sed -i 's/a/b/' f", "write"), ("sed 's/a/b/w out' f", "unknown"),
    ("awk '{print $1}' f", "read"), ("awk '{print > \"out\"}' f", "unknown"),
    ("sort -o out in", "write"), ("tee out.txt", "write"), ("tee /dev/null", "read"),
    ("systemctl status nginx", "read"), ("systemctl restart nginx", "write"),
    ("mongosh --eval 'db.x.find()'", "unknown"), ("./deploy.sh", "unknown"), ("make", "unknown"),
])
def test_shell(command, expected):
    assert effect(command) == expected, classify_command_verdict(command).steps


@pytest.mark.parametrize("command,expected", [
    ("psql -c 'SELECT 1'", "read"),
    ("psql -c 'EXPLAIN SELECT * FROM t'", "read"),
    ("psql -c 'EXPLAIN ANALYZE DELETE FROM sessions'", "side_effect_read"),
    ("psql -c \"SELECT nextval('s')\"", "side_effect_read"),
    ("psql -c 'SELECT * FROM t FOR UPDATE'", "side_effect_read"),
    ("psql -c 'SELECT * INTO t2 FROM t'", "write"),
    ("psql -c \"COPY t TO '/tmp/x.csv'\"", "write"),
    ("psql -c 'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d'", "write"),
    ("psql -c 'SELECT 1; DELETE FROM t'", "write"),
    ("psql -c '\\dt'", "read"),
    ("psql -c 'SELEC broken sql'", "unknown"),
    ("psql -f migrate.sql", "unknown"),
    ("psql db", "unknown"),
    ("psql <<'EOF'\nSELECT count(*) FROM t;\nEOF", "read"),
    ("psql <<EOF\nDELETE FROM t;\nEOF", "write"),
    ("mysql -e 'SHOW TABLES'", "read"),
    ("mysql -e 'DESCRIBE t'", "read"),
    ("mysql -e 'UPDATE t SET a=1'", "write"),
    ("sqlite3 db.sqlite 'SELECT * FROM t'", "read"),
    ("sqlite3 db.sqlite '.tables'", "read"),
    ("sqlite3 db.sqlite 'PRAGMA table_info(t)'", "read"),
    ("sqlite3 db.sqlite 'PRAGMA journal_mode=WAL'", "write"),
    ("sqlite3 db.sqlite <<SQL\nDELETE FROM t;\nSQL", "write"),
    ("sqlite3 -readonly db.sqlite 'DELETE FROM t'", "write"),  # -readonly still lets VACUUM INTO write
    ("wrangler d1 execute prod --command 'SELECT count(*) FROM files'", "read"),
    ("wrangler d1 execute prod --remote --command \"INSERT INTO files(key) VALUES ('a')\"", "write"),
    ("wrangler d1 execute prod --file schema.sql", "unknown"),
])
def test_sql_clients(command, expected):
    assert effect(command) == expected, classify_command_verdict(command).steps


@pytest.mark.parametrize("command,expected", [
    ("redis-cli GET k", "read"), ("redis-cli -h db -p 6380 HGETALL h", "read"), ("redis-cli SET k v", "write"),
    ("redis-cli LPOP jobs", "side_effect_read"), ("redis-cli INCR counter", "side_effect_read"),
    ("redis-cli CONFIG GET maxmemory", "read"), ("redis-cli CONFIG SET maxmemory 1gb", "write"),
    ("redis-cli EVAL 'return 1' 0", "unknown"), ("redis-cli --scan --pattern 'a*'", "read"),
    ("redis-cli FLUSHALL", "write"), ("redis-cli", "unknown"), ("redis-cli NOSUCHCOMMAND", "unknown"),
])
def test_redis_from_its_command_table(command, expected):
    assert effect(command) == expected, classify_command_verdict(command).steps


@pytest.mark.parametrize("command,expected", [
    ("curl https://x", "read"), ("curl -sSL https://x | jq .", "read"), ("curl -I https://x", "read"),
    ("curl -X POST https://x", "write"), ("curl --request=PUT https://x", "write"), ("curl -d a=1 https://x", "write"),
    ("curl -G -d q=1 https://x", "read"), ("curl --json '{}' https://x", "write"), ("curl -F f=@a https://x", "write"),
    ("curl -T a.png https://x", "write"), ("curl -o page.html https://x", "write"), ("curl -O https://x/a", "write"),
    ("curl -o /dev/null -w '%{http_code}' https://x", "read"), ("curl -sX DELETE https://x", "write"),
    ("curl -K cfg https://x", "unknown"),
    ("wget https://x/a.tgz", "write"), ("wget -qO- https://x", "read"), ("wget --spider https://x", "read"),
    ("wget -O - --post-data a=1 https://x", "write"),
    ("http https://x", "read"), ("http POST https://x a=1", "write"), ("http https://x a=1", "write"),
    ("http https://x q==1 Accept:json", "read"), ("http --download https://x", "write"),
])
def test_http_clients(command, expected):
    assert effect(command) == expected, classify_command_verdict(command).steps


def test_policy_commands_and_http_rules():
    policy = compile_policy_text('''
[[commands]]
name = "deployctl"
subcommands = { status = "read", rollout = "write" }

[[commands]]
name = "./scripts/report.sh"
effect = "read"

[[commands]]
name = "ls"
effect = "write"

[[http_rules]]
url_regex = "/v1/jobs/next$"
effect = "side_effect_read"
''')
    assert effect("deployctl status", policy) == "read"
    assert effect("deployctl rollout web", policy) == "write"
    assert effect("deployctl other", policy) == "unknown"
    assert effect("./scripts/report.sh --all", policy) == "read"
    assert effect("./scripts/other.sh", policy) == "unknown"
    assert effect("ls", policy) == "write"  # the policy overrides the built-in table
    assert effect("curl https://api.example.com/v1/jobs/next", policy) == "side_effect_read"
    assert effect("curl https://api.example.com/v1/jobs/17", policy) == "read"


def test_rules_that_classify_sql_and_http_arguments():
    policy = compile_policy_text('''
[[rules]]
tool = "mcp__d1__query"
classify = "sql"
sql_argument = "statement"
sql_dialect = "sqlite"
dry = true

[[rules]]
tool = "mcp__api__request"
classify = "http"

[[http_rules]]
url_regex = "/next$"
effect = "side_effect_read"
''')

    def cls(tool, tool_input):
        return classify(ToolCall(tool, tool_input, "r"), policy)

    assert cls("mcp__d1__query", {"statement": "SELECT 1"}).effect == "read"
    assert cls("mcp__d1__query", {"statement": "DELETE FROM t"}).effect == "write"
    assert cls("mcp__d1__query", {"statement": "DELETE FROM t"}).dry_scope
    assert cls("mcp__d1__query", {"sql": "SELECT 1"}).effect == "unknown"  # not the configured argument
    assert cls("mcp__api__request", {"url": "https://x/a", "method": "GET"}).effect == "read"
    assert cls("mcp__api__request", {"url": "https://x/a", "method": "PATCH"}).effect == "write"
    assert cls("mcp__api__request", {"url": "https://x/next"}).effect == "side_effect_read"
    assert cls("mcp__api__request", {"method": "GET"}).effect == "unknown"


@pytest.mark.parametrize("text,problem", [
    ('[[commands]]\nname = "x"\neffect = "maybe"', "effect must be one of"),
    ('[[commands]]\neffect = "read"', "name must be"),
    ('[[commands]]\nname = "x"\nsubcommands = { a = "bogus" }', "subcommands.a"),
    ('[[http_rules]]\nurl_regex = "("\neffect = "write"', "not a valid regex"),
    ('[[rules]]\ntool = "x"\nclassify = "yaml"', "classify must be"),
    ('[[rules]]\ntool = "x"\nclassify = "sql"\nsql_dialect = "oracle"', "sql_dialect"),
])
def test_policy_extensions_are_validated(text, problem):
    from drygate.errors import PolicyError

    with pytest.raises(PolicyError, match=problem):
        compile_policy_text(text)


def test_redis_table_is_generated_from_redis():
    from drygate.classifiers.data import redis_commands

    assert redis_commands.REDIS_VERSION and len(redis_commands.COMMANDS) > 200
    assert redis_commands.COMMANDS["GET"] == "read" and redis_commands.COMMANDS["SET"] == "write"
    assert "generated by tools/gen_redis_commands.py" in open(redis_commands.__file__).read(400).lower()


def test_sql_multi_statement_and_meta():
    assert classify_sql_script("\\dt\nSELECT 1;", "postgres", "psql").effect == "read"
    assert classify_sql_script("\\! rm -rf /", "postgres", "psql").effect == "unknown"
    assert classify_sql_script(".shell rm x", "sqlite", "sqlite3").effect == "unknown"


def test_explain_command_line(tmp_path):
    import subprocess
    import sys

    from conftest import SRC

    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "drygate.cli.entry", "explain", *a],  # noqa: E731
                                    capture_output=True, text=True, env=env, cwd=tmp_path)
    r = run("--json", "--", "psql", "-c", "EXPLAIN ANALYZE DELETE FROM t")
    answer = json.loads(r.stdout)
    assert answer["effect"] == "side_effect_read" and answer["steps"][0] == "psql -c"
    r = run("--", "sudo bash -c 'curl -X POST https://x'")
    assert "effect: write" in r.stdout and "sudo runs bash" in r.stdout
    r = run("--json", "--tool", "Bash", "--input", json.dumps({"command": "ls"}))
    assert json.loads(r.stdout)["effect"] == "read"
    r = run("--tool", "Write", "--input", "{not json")
    assert r.returncode == 1 and "not valid JSON" in r.stderr


#: Found by the second adversarial review of the classifier: each was once classified as a
#: read, and each writes, deletes, runs code or sends a non-GET request when bash runs it.
ADVERSARIAL_NOT_READ = [
    ">f echo hi", "2>f ls", "<in >out cat", "(>f ls)", "cat f | >out sort", "ls > -",
    "gcloud compute instances delete test-vm --zone us-central1-a", "gcloud projects delete test-project",
    "gcloud run services delete info-api", "az webapp delete -g rg -n app --slot test-slot",
    "npm --loglevel info install lodash", "pip --trusted-host list install evilpkg",
    "kubectl --cache-dir get delete deployment web", "helm --registry-config get uninstall myrel",
    "gh pr -B list create --title t --body b",
    "aws ec2 terminate-instances --instance-ids i-1 --dry-run --no-dry-run", "kubectl delete pod x --dry-run=false",
    "kubectl delete pod x --dry-run=client --dry-run=none", "helm uninstall myrel --dry-run=false",
    "aws s3 rm s3://b/ --recursive --exclude help",
    "sed --i 's/a/b/' f", "sed -n '1w/tmp/out' f", "sed 's/a/b/w/tmp/out' f", "sed -n -e'w /tmp/out' f",
    "echo x | sed 's/.*/touch p/ge'", "sed '1etouch x' f", "sed -nf script.sed f",
    "curl --create-dirs -o /tmp/x https://x", "curl --etag-save F https://x", "curl --libcurl F https://x",
    "wget -O- --warc-file=/tmp/w https://x", "wget -O- --save-cookies=F https://x", "http -do /tmp/x https://x",
    "http --down https://x", "redis-cli --bigkeys --rdb /tmp/dump.rdb", "redis-cli --bigkeys --pipe",
    "redis-cli ACL LOG RESET", "curl gopher://127.0.0.1:6379/_DEL%20k", "curl telnet://host:1 <<< FLUSHALL",
    "curl -Q 'DELE file' ftp://host/", "crontab /dev/null", "echo '* * * * * cmd' | crontab -",
    "flock ls touch X", "timeout 3 watch -d touch ls", "echo F | xargs -i rm echo {}", "/usr/bin/time -ao ls ls",
    "find . -maxdepth 0 -exec tee + X \\;", "docker exec ctr env rm -rf /data env",
    "kubectl exec mypod env rm -rf /data env", "ssh host sudo rm -rf /data \\; sudo ls",
    "git config user.name -- --list", "git fsck --lost-found", "mktemp dir/x.XXXX", "gzip -St d.log",
    "terraform plan --out=tfplan", "helm template web chart --output-dir D", "kubectl kustomize . -o F",
    "kubectl cluster-info dump --output-directory D", "aws s3api get-object --bucket b --key k /tmp/outfile",
    "wrangler r2 object get bucket/key", "psql --outp=F -c 'SELECT 1'", "psql -qo F -c 'SELECT 1'",
    "mysql --tee=F -e 'select 1'", "dpkg -x pkg.deb D", "yum history undo 3", "hostname --file=F", "ss -K dst x",
    "nvidia-smi -r", "journalctl --setup-keys", "hash -p /usr/bin/touch cat; cat X",
    "shopt -s expand_aliases\nalias cat='touch X #'\ncat x", "history -s 'touch X'", "x='$(touch X)'; echo ${x@P}",
    "x='a[$(touch X)]'; echo $((x))", "echo ${!x}", "test -v 'a[$(touch X)]'", "[[ -v 'a[$(touch X)]' ]]",
    "printf -v 'a[$(touch X)]' %s 1", "declare 'a[$(touch X)]=1'", "cat <<EOF\n`touch X`\nEOF",
    "export 'GIT_SSH_COMMAND=touch X'; git ls-remote ssh://h/x", "declare -n r=PATH; r=/tmp/evil",
    "env -S'touch X'", "env '-Stouch X' ls", "git ls-remote --upload-pack='touch X;:' repo",
    "ssh -o ProxyCommand='cmd' host ls", "printf 'x; touch X' | xargs -I{} sh -c 'echo {}'",
    "sqlite3 db \"SELECT writefile('F','d')\"", "sqlite3 db \"SELECT edit('x','touch X;true')\"",
    "sqlite3 -readonly db \"VACUUM INTO 'F'\"", "psql -c '\\echo `touch X`'",
    "psql -c 'EXPLAIN (ANALYSE) DELETE FROM t'", "psql -c 'EXPLAIN (\"analyze\") DELETE FROM t'",
    "mysql -e 'EXPLAIN ANALYZE DELETE FROM t'", "mysql -e 'DESC ANALYZE DELETE FROM t'",
    "mysql --init-command='DROP TABLE t' -e 'select 1'", "psql -c 'SELECT my_volatile_func()'",
    "mysql -e 'START REPLICA'", "aws apigateway test-invoke-method --rest-api-id x",
    "aws cognito-idp get-user-attribute-verification-code --attribute-name email",
    "helm template web chart --post-renderer ./x.sh", "go vet -vettool=./x", "ldd ./untrusted", "cargo metadata",
    "rg --hostname-bin=./x pattern", "wrangler d1 execute db --command 'SELECT 1' --file drop.sql",
    "wget -O- --post-d=x https://x", "wget -O- --meth=DELETE https://x", "gh api -XDELETE repos/o/r",
    "gh api -ftitle=x repos/o/r/issues", "gh api --field=title=x repos/o/r/issues",
    "gh api graphql -F query=@- <<< 'mutation { x }'", "http post example.com", "echo '{}' | http example.com",
    "curl -H 'X-HTTP-Method-Override: DELETE' https://x", "umask 000", "tldr --update", "history -r F",
]


@pytest.mark.parametrize("command", ADVERSARIAL_NOT_READ)
def test_adversarial_commands_are_not_reads(command):
    v = classify_command_verdict(command)
    assert v.effect != "read", v.steps
