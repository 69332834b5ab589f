# lamina's Ruby runtime client: the process that runs inside every execution environment of a
# rubyX.Y function. lamina starts it as `ruby $LAMBDA_RUNTIME_DIR/bootstrap.rb` (cwd = task root).
#
# It does what AWS's aws_lambda_ric does, on the standard library only:
#   * init: load the file named by _HANDLER (`file.method` or `file.Module::Class.method`) from
#     LAMBDA_TASK_ROOT; failures go to /runtime/init/error as `Init<ErrorClass>`, then exit 1;
#   * loop: GET /runtime/invocation/next, call the handler with `event:` and `context:` keywords,
#     POST the JSON result, or `{errorMessage, errorType: "Function<ErrorClass>", stackTrace}`;
#   * stdout/stderr are flushed before each result is posted.
#   * standby (lamina's own extension): started with LAMINA_STANDBY before any function needed this
#     environment, it waits in GET /2018-06-01/lamina/standby for lamina to assign one, takes that
#     function's variables and goes on as above: the interpreter start is already paid. (A function that
#     sets a variable ruby reads only at start, RUBYOPT, RUBYLIB, GEM_PATH, ..., never gets a standby.
#     A function's layers are linked into the standby's /opt as it is assigned: RUBYLIB and GEM_PATH
#     name /opt/ruby/lib and /opt/ruby/gems/X.Y.0 from the start, and the gem specifications are rescanned.)

require 'json'
require 'socket'

module LaminaRuntime
  RUNTIME = '/2018-06-01/runtime'
  USER_AGENT = "lamina-ruby/#{RUBY_VERSION}"

  # One keep-alive HTTP/1.1 connection to the Runtime API; requests are strictly sequential.
  class Client
    def initialize(address)
      @host, _, port = address.rpartition(':')
      @port = Integer(port)
      @socket = nil
    end

    def request(method, path, body = nil, headers = {})
      attempts = 0
      begin
        attempts += 1
        connect if @socket.nil?
        send_request(method, path, body, headers)
        read_reply
      rescue IOError, SystemCallError, EOFError
        @socket&.close rescue nil
        @socket = nil
        retry if attempts < 2
        raise
      end
    end

    private

    def connect
      @socket = TCPSocket.new(@host, @port)
      @socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
    end

    def send_request(method, path, body, headers)
      payload = body.nil? ? '' : body.b
      head = +"#{method} #{path} HTTP/1.1\r\nHost: #{@host}:#{@port}\r\nUser-Agent: #{USER_AGENT}\r\n"
      headers.each { |name, value| head << "#{name}: #{value}\r\n" }
      head << "Content-Length: #{payload.bytesize}\r\n\r\n"
      @socket.write(head.b + payload)
    end

    def read_reply
      status_line = @socket.gets("\r\n") or raise EOFError, 'Runtime API closed the connection'
      status = status_line.split(' ')[1].to_i
      headers = {}
      while (line = @socket.gets("\r\n")) && line != "\r\n"
        name, value = line.split(':', 2)
        headers[name.strip.downcase] = value.to_s.strip
      end
      body = if headers['transfer-encoding']&.downcase == 'chunked'
               read_chunked
             else
               length = headers['content-length'].to_i
               length.positive? ? @socket.read(length) : ''
             end
      if headers['connection']&.downcase == 'close'
        @socket.close
        @socket = nil
      end
      [status, headers, body.force_encoding('UTF-8')]
    end

    def read_chunked
      body = +''
      loop do
        size = @socket.gets("\r\n").to_i(16)
        if size.zero?
          @socket.gets("\r\n")
          return body
        end
        body << @socket.read(size)
        @socket.read(2)
      end
    end
  end

  # Lambda's Ruby context object (aws_lambda_ric's LambdaContext).
  class LambdaContext
    attr_reader :aws_request_id, :invoked_function_arn, :log_group_name, :log_stream_name,
                :function_name, :memory_limit_in_mb, :function_version, :identity, :tenant_id,
                :client_context, :deadline_ms

    def initialize(headers)
      @aws_request_id = headers['lambda-runtime-aws-request-id']
      @invoked_function_arn = headers['lambda-runtime-invoked-function-arn']
      @deadline_ms = headers['lambda-runtime-deadline-ms'].to_i
      @log_group_name = ENV['AWS_LAMBDA_LOG_GROUP_NAME']
      @log_stream_name = ENV['AWS_LAMBDA_LOG_STREAM_NAME']
      @function_name = ENV['AWS_LAMBDA_FUNCTION_NAME']
      @memory_limit_in_mb = ENV['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']
      @function_version = ENV['AWS_LAMBDA_FUNCTION_VERSION']
      @tenant_id = headers['lambda-runtime-aws-tenant-id']
      @identity = parse(headers['lambda-runtime-cognito-identity'])
      @client_context = parse(headers['lambda-runtime-client-context'])
    end

    def get_remaining_time_in_millis
      [@deadline_ms - (Process.clock_gettime(Process::CLOCK_REALTIME) * 1000).to_i, 0].max
    end

    private

    def parse(value)
      value.nil? || value.empty? ? nil : JSON.parse(value)
    rescue JSON::ParserError
      nil
    end
  end

  # _X_AMZN_TRACE_ID for each invocation, as aws_lambda_ric sets it, but not through ENV[]= in a warm
  # environment: that is setenv(3), and glibc keeps every value setenv was ever given (~150 bytes per
  # invocation, never given back). ENV reads the C environment itself, so the entry is a buffer of this
  # object's, handed to putenv(3) once (putenv keeps the pointer it is given) and rewritten in place. ENV's
  # own way serves the first invocations (loading Fiddle costs ~1.5 ms), values too long for the buffer,
  # and any host without Fiddle; code that sets or deletes the variable itself is noticed (getenv no longer
  # answers the buffer) and the buffer is put back before the next write.
  class TraceVariable
    NAME = '_X_AMZN_TRACE_ID'
    CAPACITY = 1024
    # Invocations served ENV's way before Fiddle is loaded for this (unless it already is).
    PLAIN_FIRST = 64

    def initialize
      @countdown = defined?(Fiddle::Function) ? 0 : PLAIN_FIRST
      @buffer = nil
    end

    def set(value)
      raw = value.b
      if @buffer && raw.bytesize < CAPACITY && !raw.include?("\0") && @getenv.call(NAME).to_i == @value_at
        @buffer[@offset, raw.bytesize + 1] = raw + "\0"
      else
        set_slowly(value, raw)
      end
    end

    def clear
      ENV.delete(NAME) # unsetenv: the C environment lets go of the buffer
    end

    private

    def set_slowly(value, raw)
      ENV[NAME] = value
      return unless @buffer || set_up
      return if raw.bytesize >= CAPACITY || raw.include?("\0")

      @buffer[@offset, raw.bytesize + 1] = raw + "\0"
      @putenv.call(@buffer)
    end

    def set_up
      if @countdown != 0 # > 0: invocations to go; -1: tried, for good
        @countdown -= 1 if @countdown.positive?
        return false
      end
      @countdown = -1
      require 'fiddle'
      libc = Fiddle.dlopen(nil)
      @putenv = Fiddle::Function.new(libc['putenv'], [Fiddle::TYPE_VOIDP], Fiddle::TYPE_INT)
      @getenv = Fiddle::Function.new(libc['getenv'], [Fiddle::TYPE_VOIDP], Fiddle::TYPE_VOIDP)
      @offset = NAME.bytesize + 1
      @buffer = Fiddle::Pointer.malloc(@offset + CAPACITY) # never freed: the C environment points into it
      @buffer[0, @offset] = "#{NAME}="
      @value_at = @buffer.to_i + @offset
      true
    rescue LoadError, StandardError
      @buffer = nil
      false
    end
  end

  module_function

  # Ruby's own error classes pass through as the error-type header; anything else is a user exception.
  def error_body(error, classification)
    {
      'errorMessage' => error.message,
      'errorType' => "#{classification}<#{error.class}>",
      'stackTrace' => (error.backtrace || []).map(&:to_s),
    }
  end

  def header_type(error, classification)
    builtin = error.class.name.to_s.match?(/\A[A-Z][A-Za-z]*(Error|Exception)\z/) &&
              Object.const_defined?(error.class.name.to_s) && !error.class.name.include?('::')
    builtin ? "#{classification}<#{error.class}>" : "#{classification}<UserException>"
  end

  def flush
    $stdout.flush
    $stderr.flush
  end

  # `file.method` or `file.Module::Class.method` -> [file, receiver path or nil, method].
  def split_handler(handler)
    file, dot, rest = handler.to_s.partition('.')
    raise ArgumentError, "Invalid handler #{handler}, must be of form FILENAME.METHOD or FILENAME.CLASS.METHOD" if dot.empty? || file.empty? || rest.empty?

    receiver, _, method = rest.rpartition('.')
    [file, receiver.empty? ? nil : receiver, method]
  end

  def load_handler(task_root, handler)
    file, receiver_path, method = split_handler(handler)
    $LOAD_PATH.unshift(task_root) unless $LOAD_PATH.include?(task_root)
    require File.join(task_root, file)
    receiver = receiver_path ? receiver_path.split('::').reduce(Object) { |mod, name| mod.const_get(name) } : nil
    target = receiver || TOPLEVEL_BINDING.receiver
    unless target.respond_to?(method, true)
      raise NoMethodError, "undefined method `#{method}' for #{receiver_path || 'main:Object'}"
    end
    lambda { |event, context| target.send(method, event: event, context: context) }
  end

  def await_assignment(client)
    begin
      require 'fiddle' # for TraceVariable, loaded while no function waits
    rescue LoadError
      nil
    end
    status, _, body = client.request('GET', '/2018-06-01/lamina/standby')
    raise "GET /lamina/standby answered #{status}" unless status == 200

    ENV.delete('LAMINA_STANDBY')
    JSON.parse(body).fetch('environment').each { |name, value| ENV[name] = value }
    # The function's code and layers were linked into /var/task and /opt as it was assigned: RUBYLIB and
    # GEM_PATH named them from the start, but the gem specifications seen so far may be cached.
    Gem::Specification.reset if defined?(Gem::Specification)
  end

  def run
    client = Client.new(ENV.fetch('AWS_LAMBDA_RUNTIME_API', '127.0.0.1:9001'))
    if ENV['LAMINA_STANDBY']
      begin
        await_assignment(client)
      rescue StandardError => e
        $stderr.puts("lamina bootstrap: no assignment: #{e}")
        exit!(1)
      end
    end
    task_root = ENV.fetch('LAMBDA_TASK_ROOT', Dir.pwd)
    $stdout.sync = true
    $stderr.sync = true
    begin
      handler = load_handler(task_root, ENV['_HANDLER'])
    rescue Exception => e # rubocop:disable Lint/RescueException -- LoadError and SyntaxError are not StandardErrors
      body = error_body(e, 'Init')
      $stderr.puts(JSON.generate(body))
      flush
      client.request('POST', "#{RUNTIME}/init/error", JSON.generate(body),
                     'Content-Type' => 'application/json',
                     'Lambda-Runtime-Function-Error-Type' => header_type(e, 'Init'))
      exit!(1)
    end

    trace_variable = TraceVariable.new
    loop do
      status, headers, event_body = client.request('GET', "#{RUNTIME}/invocation/next")
      raise "Runtime API answered #{status} to next" unless status == 200

      request_id = headers['lambda-runtime-aws-request-id']
      trace = headers['lambda-runtime-trace-id']
      trace ? trace_variable.set(trace) : trace_variable.clear
      begin
        event = event_body.empty? ? nil : JSON.parse(event_body, quirks_mode: true)
      rescue JSON::ParserError => e
        post_error(client, request_id, e, 'Runtime.UnmarshalError', 'Runtime.UnmarshalError')
        next
      end
      context = LambdaContext.new(headers)
      begin
        result = handler.call(event, context)
        payload = JSON.generate(result, quirks_mode: true)
      rescue Exception => e # rubocop:disable Lint/RescueException -- a handler's exit or ScriptError is still its error
        raise if e.is_a?(SystemExit)

        body = error_body(e, 'Function')
        $stderr.puts(JSON.generate(body))
        flush
        client.request('POST', "#{RUNTIME}/invocation/#{request_id}/error", JSON.generate(body),
                       'Content-Type' => 'application/json',
                       'Lambda-Runtime-Function-Error-Type' => header_type(e, 'Function'))
        next
      end
      flush
      client.request('POST', "#{RUNTIME}/invocation/#{request_id}/response", payload,
                     'Content-Type' => 'application/json')
    end
  end

  def post_error(client, request_id, error, type, header)
    body = { 'errorMessage' => error.message, 'errorType' => type, 'stackTrace' => [] }
    flush
    client.request('POST', "#{RUNTIME}/invocation/#{request_id}/error", JSON.generate(body),
                   'Content-Type' => 'application/json', 'Lambda-Runtime-Function-Error-Type' => header)
  end
end

LaminaRuntime.run if $PROGRAM_NAME == __FILE__
