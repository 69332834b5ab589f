// A starter Node.js function: greets whoever the event names.
export const handler = async (event, context) => {
  const name = event.name ?? 'world';
  console.log(`greeting ${name}`);
  return { message: `hello, ${name}`, requestId: context.awsRequestId };
};
